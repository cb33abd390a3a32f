"""`/docs`: Swagger UI without inline script, so its page can carry a strict Content-Security-Policy.

FastAPI's own page starts Swagger UI from an inline `<script>`; here the same start-up code is served as
`/docs/init.js` and the page only loads scripts from this origin and the Swagger UI CDN.
"""

from __future__ import annotations

import json

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

router = APIRouter(include_in_schema=False)

CDN = "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5"
DOCS_CSP = (
    "default-src 'none'; script-src 'self' https://cdn.jsdelivr.net; style-src https://cdn.jsdelivr.net; "
    "img-src 'self' data: https://cdn.jsdelivr.net; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)
_PAGE = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Job platform - API docs</title>
<link rel="stylesheet" href="{CDN}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{CDN}/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body></html>"""
_INIT = "window.ui = SwaggerUIBundle(" + json.dumps({"url": "/openapi.json", "dom_id": "#swagger-ui"}) + ");\n"


@router.get("/docs")
async def docs_page() -> HTMLResponse:
    return HTMLResponse(_PAGE, headers={"Content-Security-Policy": DOCS_CSP})


@router.get("/docs/init.js")
async def docs_script() -> Response:
    return Response(_INIT, media_type="text/javascript", headers={"Content-Security-Policy": DOCS_CSP})
