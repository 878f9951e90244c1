"""The collection desk: server-rendered pages (Jinja2) served by the API's FastAPI app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles


def install(app: FastAPI) -> None:
    """Add the desk's pages, its stylesheet under ``/static`` and the sign-in redirect to an app."""
    from arrears.web import admin, guard, navigation, oversight, plans, supervisor
    from arrears.web.routes import SignInRequired, router, sign_in_redirect, templates

    templates.globals["nav_links"] = navigation.links_for
    for name in templates.list_templates(extensions=["html"]):
        templates.get_template(name)  # parsed once per process, before the first page asks for it
    app.include_router(router)
    app.include_router(admin.router)
    app.include_router(oversight.router)
    app.include_router(plans.router)
    app.include_router(supervisor.router)
    app.mount("/static", StaticFiles(packages=[("arrears.web", "static")]), name="static")
    app.add_exception_handler(SignInRequired, sign_in_redirect)
    app.add_exception_handler(guard.PageRefused, guard.page_refused)
