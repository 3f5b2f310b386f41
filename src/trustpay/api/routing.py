"""The app's routes in one flat list, so finding a request's route costs one regex per route.

FastAPI (since 0.137) keeps each ``include_router`` as a node in ``app.routes``. On every request
the app asks each node in turn, and a node walks every route of its router, saving and restoring
FastAPI's scope keys around each one; each app also builds every included route's handler again
on first use (a few ms a route). With ~30 routers and ~200 routes, finding a late page or answering a
404 cost ~1 ms of CPU (a 404 walks everything twice: Starlette retries with the other trailing
slash).

``FlatRoutesApp.include_router`` includes the router the FastAPI way (its checks, start-up
handlers, lifespan) and then, when that inclusion adds nothing to the router's routes (no prefix,
tags, dependencies, responses, body limit or defaults from the include or from the app), puts the
router's own ``APIRoute`` objects in place of the node: the app then matches them like routes
declared on the app itself. Paths, order, names, methods, dependencies, body limits and the
OpenAPI document are what FastAPI's inclusion gives. Anything else (include options, a mount, a
custom route class, a nested router that changes its routes) stays a node, as FastAPI built it.
A router's ``form_limits`` come with the include, so a router that has some stays a node too (a
nested router's are not visible; tests/integration/test_flat_routes.py pins that none has any).

The routes are built once, at import, and shared by every app, so ``app.dependency_overrides``
cannot reach them: the app refuses overrides rather than ignore them.
"""

from __future__ import annotations

from typing import Any, NoReturn

from fastapi import APIRouter, FastAPI
from fastapi.datastructures import DefaultPlaceholder
from fastapi.routing import APIRoute, RouteContext, iter_route_contexts
from starlette.routing import BaseRoute


class FlatRoutesApp(FastAPI):
    def __init__(self, **settings: Any) -> None:
        super().__init__(**settings)
        self.dependency_overrides = _NoOverrides()

    def include_router(self, router: APIRouter, **options: Any) -> None:
        super().include_router(router, **options)
        node = self.router.routes[-1]  # what include_router just appended
        if isinstance(node, APIRoute) or options or router.form_limits or not _adds_nothing(self.router):
            return
        routes = _unchanged_routes(router, self.router)
        if routes is not None:
            self.router.routes[-1:] = routes


def _adds_nothing(app_router: APIRouter) -> bool:
    """Whether including a router into ``app_router`` with no options leaves its routes as they are
    (what FastAPI's include context takes from the parent router)."""
    return (
        app_router.prefix == ""
        and not app_router.tags
        and not app_router.dependencies
        and not app_router.responses
        and not app_router.callbacks
        and not app_router.deprecated
        and app_router.include_in_schema
        and app_router.max_body_size is None
        and isinstance(app_router.default_response_class, DefaultPlaceholder)
        and isinstance(app_router.generate_unique_id_function, DefaultPlaceholder)
    )


def _unchanged_routes(router: APIRouter, app_router: APIRouter) -> list[BaseRoute] | None:
    """The router's routes in order, nested routers' included, or None if any is not a plain
    APIRoute or a nested inclusion changed one (FastAPI's route context says how it serves it)."""
    routes: list[BaseRoute] = []
    for context in iter_route_contexts(router.routes):
        route = context.original_route
        if (type(route) is not APIRoute or not _serves_as_is(context, route)
                or _strict_content_type(route, app_router) != _value(route.strict_content_type)):
            return None
        routes.append(route)
    return routes


def _serves_as_is(context: RouteContext, route: APIRoute) -> bool:
    return (
        context.path == route.path
        and context.name == route.name
        and context.methods == route.methods
        and context.include_in_schema == route.include_in_schema
        and context.tags == route.tags
        and context.dependencies == route.dependencies
        and context.responses == route.responses
        and context.response_class is route.response_class
        and context.max_body_size == route.max_body_size
        and bool(context.deprecated) == bool(route.deprecated)
        and list(context.callbacks or []) == list(route.callbacks or [])
        and context.unique_id == route.unique_id
        and _value(context.strict_content_type) == _value(route.strict_content_type)
        and context.dependency_overrides_provider is route.dependency_overrides_provider
    )


def _strict_content_type(route: APIRoute, app_router: APIRouter) -> bool:
    """Whether the included route checks a JSON body's Content-Type: its own setting, else the
    app's (FastAPI's app sets True explicitly, the routers' default is a placeholder for True)."""
    for setting in (route.strict_content_type, app_router.strict_content_type):
        if not isinstance(setting, DefaultPlaceholder):
            return setting
    return _value(route.strict_content_type)


def _value(setting: bool | DefaultPlaceholder) -> bool:
    return bool(setting.value) if isinstance(setting, DefaultPlaceholder) else setting


class _NoOverrides(dict[Any, Any]):
    def _refuse(self, *_: Any, **__: Any) -> NoReturn:
        raise TypeError("app.dependency_overrides cannot reach the app's routes (they are shared "
                        "between apps, see trustpay.api.routing); build the Platform with what the test needs")

    __setitem__ = update = setdefault = __ior__ = _refuse
