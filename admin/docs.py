"""The API's documentation pages, `/docs` (Swagger UI) and `/redoc`, with every asset local.

FastAPI's own pages load Swagger UI and ReDoc from a public CDN, and are blank
on the isolated networks a gateway runs on. `docs_router()` serves both pages
with their scripts, styles and icon under `ASSETS` from the files of the
installed `fastapi-offline` package (its `static/` folder: swagger-ui's and
redoc's distributed bundles), and turns off everything on the pages that would
reach out: Google's fonts on ReDoc, Swagger UI's online validator. Neither page
needs a token (the schema, `/openapi.json`, does not either); the /v1/ calls
tried from Swagger UI take one ("Authorize"). If the package's folder is missing
the app does not start (`RuntimeError` from Starlette naming the folder).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
SWAGGER_PARAMETERS = {"validatorUrl": None}  # no badge fetched from validator.swagger.io


def assets_folder() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def install(app: FastAPI, title: str) -> None:
    """Mount `/docs`, `/redoc` and their assets on `app` (built with docs_url=None)."""
    app.mount(ASSETS, StaticFiles(directory=assets_folder()), name="docs-assets")
    schema = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=schema,
            title=f"{title}: Swagger UI",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=schema,
            title=f"{title}: ReDoc",
            redoc_js_url=f"{ASSETS}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS}/favicon.png",
            with_google_fonts=False,
        )
