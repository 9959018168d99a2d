"""The web page: GET / and its three static files under /static.

The page is plain HTML, CSS and JavaScript in app/web/, with no build step
and nothing fetched from another origin; the Content-Security-Policy below
makes the browser enforce that. It talks to the JSON API of this server.
"""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.core.errors import ApiError

router = APIRouter(include_in_schema=False)

WEB_DIR = Path(__file__).resolve().parents[2] / "web"
# Only these files are served, so no request path can reach another file.
STATIC_FILES = {
    "app.js": "text/javascript",
    "app.css": "text/css",
}
# Scripts, styles and requests only to this server; the plot is inline SVG.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; "
    "connect-src 'self'; img-src 'self' data:; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # The page and its script change together; always ask the server.
    "Cache-Control": "no-cache",
}


class StaticFileNotFound(ApiError):
    status = 404
    type = "/problems/static-file-not-found"
    title = "Static file not found"


@router.get("/")
def page() -> FileResponse:
    """The search, plot, analogy, similarity and fine-tune page."""
    return FileResponse(
        WEB_DIR / "index.html", media_type="text/html", headers=PAGE_HEADERS
    )


@router.get("/static/{name}")
def static_file(name: str) -> FileResponse:
    """One of the page's own files (see STATIC_FILES)."""
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise StaticFileNotFound(
            f"there is no static file {name!r}; the page uses "
            f"{', '.join(sorted(STATIC_FILES))}"
        )
    return FileResponse(WEB_DIR / name, media_type=media_type, headers=PAGE_HEADERS)
