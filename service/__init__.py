"""The HTTP edge of the platform. Nothing imports this package."""
