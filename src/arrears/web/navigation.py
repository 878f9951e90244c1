"""The header's navigation, driven by role: a list of links, each shown to the roles it names.

Pages register their link here (``NAV``), so new areas (compliance, administration) add one entry and
the header follows; ``links_for`` is a Jinja global used by ``base.html``.
"""

from __future__ import annotations

from dataclasses import dataclass

from arrears.enums import Role


@dataclass(frozen=True, slots=True)
class NavLink:
    href: str
    label_key: str  # a key of the desk's message catalogs
    roles: frozenset[str]
    test_id: str = ""


EVERYONE = frozenset(r.value for r in Role)
SUPERVISING = frozenset({Role.SUPERVISOR.value, Role.ADMIN.value})

NAV: list[NavLink] = [
    NavLink("/queue", "work_queue", EVERYONE, "nav-queue"),
    NavLink("/supervisor", "dashboard", SUPERVISING, "nav-dashboard"),
    NavLink("/supervisor/team", "team", SUPERVISING, "nav-team"),
    NavLink("/supervisor/approvals", "approvals", SUPERVISING, "nav-approvals"),
    NavLink("/supervisor/runs", "run_history", SUPERVISING, "nav-runs"),
    NavLink(
        "/compliance/contacts",
        "nav_compliance",
        frozenset({Role.COMPLIANCE.value, Role.ADMIN.value, Role.READ_ONLY.value}),
        "nav-compliance",
    ),
    NavLink("/admin/imports", "nav_admin", frozenset({Role.ADMIN.value}), "nav-admin"),
]


def register(link: NavLink) -> None:
    """Add a link to the header (once; a second registration of the same path is ignored)."""
    if all(existing.href != link.href for existing in NAV):
        NAV.append(link)


def links_for(role: str) -> list[NavLink]:
    """The links a role sees, in registration order."""
    return [link for link in NAV if role in link.roles]
