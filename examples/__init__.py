"""Example apps that use the platform from their own FastAPI code."""
