"""`/docs`: Swagger UI served by the API itself (service/static.py), so it works offline, and without inline
script, so its page can carry a strict Content-Security-Policy: every script, style and image from this origin.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from service import static

router = APIRouter(include_in_schema=False)
router.routes.append(static.mount())

DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_PAGE = f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>Job platform - API docs</title>
<link rel="icon" type="image/png" href="{static.SWAGGER_UI}/favicon-32x32.png">
<link rel="stylesheet" href="{static.SWAGGER_UI}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{static.SWAGGER_UI}/swagger-ui-bundle.js"></script>
<script src="{static.url("docs-init.js")}"></script>
</body></html>"""


@router.get("/docs")
async def docs_page() -> HTMLResponse:
    return HTMLResponse(_PAGE, headers={"Content-Security-Policy": DOCS_CSP})
