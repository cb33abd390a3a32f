"""Files the API serves from the package itself, never from a CDN, so its pages work offline: `/static/...` from
`service/static/` (the platform's own scripts and styles; drop a page's files there), and `/static/swagger-ui/...`,
Swagger UI's distribution as the `fastapi-swagger` package ships it (MIT; Swagger UI itself is Apache 2.0).

One mount for all of it, behind the guard like every route (a GET: the `read` scope).
"""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).with_name("static")
PREFIX = "/static"
SWAGGER_UI = f"{PREFIX}/swagger-ui"


def url(path: str) -> str:
    """The URL of a file under `service/static/`."""
    return f"{PREFIX}/{path.lstrip('/')}"


def mount() -> Mount:
    return Mount(
        PREFIX,
        routes=[
            Mount("/swagger-ui", StaticFiles(packages=[("fastapi_swagger", "resources")])),
            Mount("", StaticFiles(directory=STATIC_DIR)),
        ],
        name="static",
    )
