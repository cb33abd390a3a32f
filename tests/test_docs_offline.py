"""`/docs` works offline: the page, its script and its styles come from the API itself (service/static.py)."""

from __future__ import annotations

import re

import httpx

from service.docs import DOCS_CSP

REFERENCE = re.compile(r"""(?:src|href)=["']([^"']+)["']""")
EXTERNAL = re.compile(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}")  # a URL of another host


async def test_the_docs_page_references_no_external_url_and_its_assets_answer(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert (
        not EXTERNAL.search(page.headers["content-security-policy"])
        and page.headers["content-security-policy"] == DOCS_CSP
    )
    references = REFERENCE.findall(page.text)
    assert len(references) >= 3
    assert not EXTERNAL.search(page.text), "the page names an outside URL"
    types = {}
    for reference in references:
        asset = await client.get(reference)
        assert asset.status_code == 200, reference
        types[reference.rsplit(".", 1)[-1]] = asset.headers["content-type"]
        if reference.endswith("init.js"):
            assert not EXTERNAL.search(asset.text) and "/openapi.json" in asset.text
        elif reference.endswith("bundle.js"):
            assert "SwaggerUIBundle" in asset.text and len(asset.content) > 500_000
    assert types["js"].startswith("text/javascript") and types["css"].startswith("text/css")
    assert (await client.get("/openapi.json")).status_code == 200


async def test_static_files_stay_inside_the_package(client: httpx.AsyncClient) -> None:
    assert (await client.get("/static/nope.js")).status_code == 404
    assert (await client.get("/static/..%2f..%2fsettings.py")).status_code == 404
    assert (await client.get("/static/swagger-ui/..%2f__init__.py")).status_code == 404
