"""Jinja2 rendering: one environment per language, each with its catalog installed.

One environment per language (three in all) keeps rendering thread-safe:
installing translations into a shared environment per request would race
between the worker threads FastAPI runs sync routes on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.datastructures import URL

from trustpay.settings import get_settings
from trustpay.web import auth, card_labels
from trustpay.web.i18n import (
    COOKIE_MAX_AGE,
    COOKIE_NAME,
    ENDONYMS,
    LANGUAGES,
    SHORT_NAMES,
    LanguageChoice,
    choose_language,
    format_money,
    format_percent,
    format_timestamp,
    translations,
)

TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"


@lru_cache(maxsize=len(LANGUAGES))
def environment(lang: str) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(("html",)),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # {% trans %} blocks collapse their inner whitespace, so msgids are one line.
    env.policies["ext.i18n.trimmed"] = True
    env.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    # {{ card.brand | card_brand }}: "VISA", and "银联" rather than "UNIONPAY" in Chinese.
    env.filters["card_brand"] = partial(card_labels.brand_label, translations(lang).gettext)
    env.globals.update(
        lang=lang,
        money=partial(format_money, lang=lang),
        percent=format_percent,
    )
    # ``timestamp`` is not a global here: it needs the platform's display time zone,
    # which is per app (tests run apps with different settings); render() passes it.
    return env


def display_timezone(request: Request) -> str:
    """The zone pages show times in: the app's ``display_timezone`` setting (the
    process-wide settings for a request that has no TrustPay app, as in unit tests)."""
    platform = getattr(getattr(request.scope.get("app"), "state", None), "platform", None)
    settings = platform.settings if platform is not None else get_settings()
    return str(settings.display_timezone)


def timestamp_formatter(request: Request, lang: str | None = None) -> Callable[[datetime], str]:
    """``timestamp(when)`` for ``request``: the instant in the display zone, in the page's
    language, labelled with its UTC offset (i18n.format_timestamp)."""
    return partial(format_timestamp, lang=lang or language_of(request).lang, zone=display_timezone(request))


def language_of(request: Request) -> LanguageChoice:
    return choose_language(
        request.query_params.get("lang"),
        request.cookies.get(COOKIE_NAME),
        request.headers.get("accept-language"),
    )


def language_links(request: Request, current: str) -> list[dict[str, Any]]:
    """The header's language switch: this same page in each language.

    A page that answers a form (a POST showing what to correct) has no address of
    its own to open again: there the switch opens the page the form was sent from.
    """
    page = request.url if request.method in ("GET", "HEAD") else _form_origin(request)
    links = []
    for code in LANGUAGES:
        url = page.include_query_params(lang=code)
        links.append({
            "code": code,
            "name": ENDONYMS[code],
            "short": SHORT_NAMES[code],
            "href": f"{url.path}?{url.query}",
            "current": code == current,
        })
    return links


def form_page_of(request: Request) -> str:
    """The page a POST-only address belongs to: its path without the last segment
    (``/checkout/T/pay`` → ``/checkout/T``, ``/merchant/trades/T/refund`` →
    ``/merchant/trades/T``), with the request's query kept."""
    parent = request.url.path.rstrip("/").rpartition("/")[0] or "/"
    return f"{parent}?{request.url.query}" if request.url.query else parent


def _form_origin(request: Request) -> URL:
    """The page a form was sent from: the Referer when it is this site's, else the
    page the form's address belongs to (its path less the last segment)."""
    referer = URL(request.headers.get("referer", ""))
    if referer.netloc == request.url.netloc and referer.path.startswith("/"):
        return referer.replace(scheme="", netloc="")
    return URL(form_page_of(request))


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    choice: LanguageChoice | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    """Render ``template`` in the request's language; remember a ``?lang=`` choice."""
    choice = choice or language_of(request)
    page = environment(choice.lang).get_template(template)
    values = dict(context or {})
    viewer = values.pop("viewer") if "viewer" in values else auth.current_viewer(request, touch=False)
    new_cookies: dict[str, str] = {}
    html = page.render(
        request=request,
        languages=language_links(request, choice.lang),
        viewer=viewer,
        # Called by templates with a POST form: the CSRF token (a nonce cookie is minted if needed).
        csrf=lambda: auth.form_token(request, viewer, new_cookies),
        timestamp=timestamp_formatter(request, choice.lang),
        **values,
    )
    response = HTMLResponse(html, status_code=status_code)
    for nonce in new_cookies.values():
        auth.set_nonce_cookie(request, response, nonce)
    response.headers["Content-Language"] = choice.lang
    if viewer is not None:
        response.headers["Cache-Control"] = "no-store"
    response.headers["Vary"] = "Accept-Language, Cookie"
    if choice.remember:
        response.set_cookie(
            COOKIE_NAME, choice.lang, max_age=COOKIE_MAX_AGE, path="/", samesite="lax",
            httponly=True, secure=request.url.scheme == "https",
        )
    return response


def gettext(request: Request, message: str) -> str:
    """``message`` translated into the request's language (for text chosen in Python)."""
    return str(translations(language_of(request).lang).gettext(message))
