"""Who may read and who may work a case (least privilege, PI-1, PI-4, PI-9). Pure functions.

* read: supervisors, compliance officers, administrators and read-only auditors read every case; a
  collector reads only the cases assigned to them (``case.assignee_id``); an agency user reads nothing
  here until users are linked to their agency's placements (PI-4: only placed cases, only for the term).
* work (log a call, record a promise, post a payment): the case's collector, supervisors, administrators.
"""

from __future__ import annotations

from arrears.enums import Role

READ_ALL = frozenset({Role.SUPERVISOR, Role.COMPLIANCE, Role.ADMIN, Role.READ_ONLY})
WORK_ALL = frozenset({Role.SUPERVISOR, Role.ADMIN})


def _role(role: str) -> Role | None:
    try:
        return Role(role)
    except ValueError:
        return None


def may_read_case(*, role: str, user_id: int, assignee_id: int | None) -> bool:
    """Whether a user may open a case's page (its debtor's record)."""
    kind = _role(role)
    if kind in READ_ALL:
        return True
    return kind == Role.COLLECTOR and assignee_id is not None and assignee_id == user_id


def may_work_case(*, role: str, user_id: int, assignee_id: int | None) -> bool:
    """Whether a user may record contacts, promises and payments on a case."""
    kind = _role(role)
    if kind in WORK_ALL:
        return True
    return kind == Role.COLLECTOR and assignee_id is not None and assignee_id == user_id


def sees_all_queues(role: str) -> bool:
    """Whether the queue page lists every collector's work (supervisors and readers) or only one's own."""
    return _role(role) in READ_ALL
