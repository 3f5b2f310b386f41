"""The app's routes sit in one flat list (trustpay.api.routing) and serve exactly what FastAPI's own
nested include_router serves: same routes in the same order, same OpenAPI document, same url_for,
same answers (404 JSON and HTML, 405, mounts, static files)."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.datastructures import DefaultPlaceholder
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import BaseRoute, Mount

import trustpay.api
import trustpay.app
import trustpay.web
from trustpay.clock import FrozenClock
from trustpay.platform.context import Platform
from trustpay.settings import Settings


@pytest.fixture
def apps(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FastAPI, FastAPI]]:
    """(FastAPI's nested inclusion, the flat app), over one platform with every optional route on."""
    platform = Platform.build(Settings(database_url=db_url, test_clock=True,
                                       bank_sandbox_data_dir=str(tmp_path / "bank")), clock=FrozenClock())
    flat = trustpay.app.create_app(platform=platform, start_worker=False)
    with monkeypatch.context() as m:
        m.setattr(trustpay.app, "FlatRoutesApp", FastAPI)
        nested = trustpay.app.create_app(platform=platform, start_worker=False)
    try:
        yield nested, flat
    finally:
        platform.close()


def _value(setting: Any) -> Any:
    return setting.value if isinstance(setting, DefaultPlaceholder) else setting


def _sample(route: BaseRoute) -> dict[str, str]:
    convertors = getattr(route, "param_convertors", {})
    return {name: "1" if type(c).__name__ == "IntegerConvertor" else "x1" for name, c in convertors.items()}


def test_no_included_router_is_left_a_node(apps: tuple[FastAPI, FastAPI]) -> None:
    nested, flat = apps
    assert all(isinstance(r, APIRoute | Mount) or type(r).__module__.startswith("starlette")
               for r in flat.routes), [type(r) for r in flat.routes]
    assert len(flat.routes) > len(nested.routes)  # the nested app holds nodes


def test_same_routes_in_the_same_order_as_fastapi_includes_them(apps: tuple[FastAPI, FastAPI]) -> None:
    nested, flat = apps
    want, got = list(iter_route_contexts(nested.routes)), list(iter_route_contexts(flat.routes))
    assert [(c.path, c.name, c.methods) for c in got] == [(c.path, c.name, c.methods) for c in want]
    for w, g in zip(want, got, strict=True):
        if not isinstance(w.original_route, APIRoute):
            continue
        assert g.original_route is w.original_route  # the router's own route, not a copy
        for attr in ("include_in_schema", "tags", "dependencies", "responses", "max_body_size", "status_code",
                     "unique_id", "response_model", "description", "summary", "deprecated", "endpoint"):
            assert getattr(g, attr) == getattr(w, attr), (w.path, attr)
        for attr in ("response_class", "strict_content_type"):
            assert _value(getattr(g, attr)) == _value(getattr(w, attr)), (w.path, attr)


def test_openapi_document_is_unchanged(apps: tuple[FastAPI, FastAPI]) -> None:
    nested, flat = apps
    assert json.dumps(flat.openapi()) == json.dumps(nested.openapi())  # key order too
    assert TestClient(flat).get("/openapi.json").content == TestClient(nested).get("/openapi.json").content


def test_url_for_finds_every_named_route(apps: tuple[FastAPI, FastAPI]) -> None:
    nested, flat = apps
    for ctx in iter_route_contexts(nested.routes):
        if ctx.name and not isinstance(ctx.original_route, Mount):
            params = _sample(ctx.original_route)
            assert flat.url_path_for(ctx.name, **params) == nested.url_path_for(ctx.name, **params)


CSRF_TOKEN = re.compile(rb'name="csrf_token" value="[^"]*"')


def _answer(client: TestClient, method: str, path: str, accept: str) -> tuple[int, str | None, str | None, bytes]:
    r = client.request(method, path, headers={"accept": accept}, follow_redirects=False)
    body = CSRF_TOKEN.sub(b"csrf", r.content)  # a fresh token each time
    return r.status_code, r.headers.get("allow"), r.headers.get("location"), body


def test_every_route_answers_as_under_fastapis_include(apps: tuple[FastAPI, FastAPI]) -> None:
    """No credentials, no body: each route answers (401, 422, 303 to the log-in page, a page...)
    the same in both apps; so do a method it lacks (405), unknown paths (JSON and the HTML page),
    a trailing slash, the sandbox bank mount and a static file."""
    nested, flat = apps
    want, got = TestClient(nested, raise_server_exceptions=False), TestClient(flat, raise_server_exceptions=False)
    requests = [("GET", "/v1/nothing-here", "application/json"), ("GET", "/nothing-here", "text/html"),
                ("GET", "/nothing-here", "application/json"), ("POST", "/nothing-here", "text/html"),
                ("GET", "/healthz/", "*/*"), ("PATCH", "/healthz", "*/*"), ("GET", "/static/favicon.svg", "*/*"),
                ("GET", "/static/nothing.css", "*/*"), ("GET", "/sandbox-bank/healthz", "*/*"),
                ("GET", "/sandbox-bank/nothing", "*/*")]
    for ctx in iter_route_contexts(flat.routes):
        route = ctx.original_route
        if isinstance(route, APIRoute):
            url = str(route.url_path_for(route.name, **_sample(route)))
            requests += [(min(route.methods or {"GET"}), url, "text/html,application/json;q=0.9"), ("PUT", url, "*/*")]
    statuses = set()
    for method, path, accept in requests:
        answer = _answer(got, method, path, accept)
        assert answer == _answer(want, method, path, accept), (method, path)
        statuses.add(answer[0])
    assert {200, 303, 401, 404, 405} <= statuses, statuses  # the requests reach every kind of answer


def test_overrides_are_refused_rather_than_ignored(apps: tuple[FastAPI, FastAPI]) -> None:
    _, flat = apps
    with pytest.raises(TypeError, match="shared"):
        flat.dependency_overrides[len] = str
    assert not flat.dependency_overrides


def test_no_router_sets_form_limits() -> None:
    """A nested router's form limits would come with FastAPI's inclusion and are not visible to
    the flattening; none of ours has any."""
    routers = []
    for package in (trustpay.api, trustpay.web):
        for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            module = importlib.import_module(info.name)
            routers += [v for v in vars(module).values() if isinstance(v, APIRouter)]
    assert len(routers) > 20
    assert [r for r in routers if r.form_limits] == []
