"""Who may read and who may work a case (least privilege, PI-1, PI-4, PI-9). Pure functions.

The pages and the API ask the same questions through ``users/guard.py``, which gathers the facts these
functions need (the case's collector, the reader's team, the case's placement today).

* read: supervisors, compliance officers, administrators and read-only auditors read every case; a
  collector reads the cases assigned to them and to their team (collectors who share a work queue with
  them, ``collector_profile.queues``); an agency user reads a case only while it is placed with their agency
  (PI-4: on recall or at the end of the term access ends at once).
* work (log a call, record a promise, post a payment): the case's own collector, the agency the case is
  placed with (while placed), supervisors and administrators.
* reveal a masked field (PI-6): whoever may work the case, and compliance officers; never read-only users.
"""

from __future__ import annotations

from collections.abc import Collection

from arrears.enums import Role

READ_ALL = frozenset({Role.SUPERVISOR, Role.COMPLIANCE, Role.ADMIN, Role.READ_ONLY})
WORK_ALL = frozenset({Role.SUPERVISOR, Role.ADMIN})
REVEAL_ALL = frozenset({Role.SUPERVISOR, Role.COMPLIANCE, Role.ADMIN})
# Portfolio-wide operations (daily runs, accrual, placements, templates, agencies, allocations).
MANAGE = frozenset({Role.SUPERVISOR, Role.ADMIN})
# Everyone who works for the lender itself (not an outside agency).
IN_HOUSE = frozenset({Role.COLLECTOR, Role.SUPERVISOR, Role.COMPLIANCE, Role.ADMIN, Role.READ_ONLY})


# The collector (in the legal sense, US-3) the lender's own staff contact debtors as.
IN_HOUSE_COLLECTOR = "in_house"


def collecting_party(agency_id: int | None) -> str:
    """The collector, in the legal sense, a person's contacts are made and counted as (US-3 counts calls per
    person, debt and collector): the lender itself for its own staff, their agency for an agency's people."""
    return IN_HOUSE_COLLECTOR if agency_id is None else f"agency:{agency_id}"


def _role(role: str) -> Role | None:
    try:
        return Role(role)
    except ValueError:
        return None


def _placed_with(user_agency_id: int | None, placed_agency_id: int | None) -> bool:
    return user_agency_id is not None and placed_agency_id == user_agency_id


def may_read_case(
    *,
    role: str,
    user_id: int,
    assignee_id: int | None,
    team_ids: Collection[int] = (),
    user_agency_id: int | None = None,
    placed_agency_id: int | None = None,
) -> bool:
    """Whether a user may open a case's page (its debtor's record).

    ``team_ids``: the collectors of the user's team; ``placed_agency_id``: the agency the case is placed
    with today (None when it is not placed).
    """
    kind = _role(role)
    if kind in READ_ALL:
        return True
    if kind == Role.COLLECTOR:
        return assignee_id is not None and (assignee_id == user_id or assignee_id in team_ids)
    if kind == Role.AGENCY:
        return _placed_with(user_agency_id, placed_agency_id)
    return False


def may_work_case(
    *,
    role: str,
    user_id: int,
    assignee_id: int | None,
    user_agency_id: int | None = None,
    placed_agency_id: int | None = None,
) -> bool:
    """Whether a user may record contacts, promises and payments on a case."""
    kind = _role(role)
    if kind in WORK_ALL:
        return True
    if kind == Role.COLLECTOR:
        return assignee_id is not None and assignee_id == user_id
    if kind == Role.AGENCY:
        return _placed_with(user_agency_id, placed_agency_id)
    return False


def may_reveal(*, role: str, may_work: bool) -> bool:
    """Whether a user may see a masked field in clear (each reveal is logged with a reason, PI-6)."""
    kind = _role(role)
    if kind in REVEAL_ALL:
        return True
    return kind in (Role.COLLECTOR, Role.AGENCY) and may_work


def has_role(role: str, allowed: Collection[Role]) -> bool:
    """Whether ``role`` is one of ``allowed``."""
    return _role(role) in allowed


def sees_all_queues(role: str) -> bool:
    """Whether the queue page lists every collector's work (supervisors and readers) or only one's own."""
    return _role(role) in READ_ALL
