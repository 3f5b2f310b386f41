"""The friendly HTML 404 for people; API clients keep the JSON error format."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from trustpay.web.i18n import parse_quality_list
from trustpay.web.templating import render

API_PREFIX = "/v1"


def is_api_path(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


def prefers_html(accept: str | None) -> bool:
    """True when the client ranks ``text/html`` at least as high as JSON (a browser)."""
    ranked = [item.lower() for item in parse_quality_list(accept)]
    if "text/html" not in ranked:
        return False
    return "application/json" not in ranked or (
        ranked.index("text/html") < ranked.index("application/json")
    )


def wants_html_page(request: Request) -> bool:
    return (
        request.method in ("GET", "HEAD")
        and not is_api_path(request.url.path)
        and prefers_html(request.headers.get("accept"))
    )


def not_found_page(request: Request) -> HTMLResponse:
    return render(request, "404.html", status_code=404)
