"""ASGI entry point: `uvicorn examples.shop.main:app` (settings from the environment, like the platform's)."""

from examples.shop.app import create_app

app = create_app()
