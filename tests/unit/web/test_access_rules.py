"""The pure access rules (users/access.py) and the sign-in network check (users/guard.network_allowed)."""

from __future__ import annotations

from arrears.users import access
from arrears.users.guard import network_allowed


def test_a_collector_reads_own_and_team_cases_and_works_only_own() -> None:
    assert access.may_read_case(role="collector", user_id=1, assignee_id=1)
    assert access.may_read_case(role="collector", user_id=1, assignee_id=2, team_ids={1, 2})
    assert not access.may_read_case(role="collector", user_id=1, assignee_id=3, team_ids={1, 2})
    assert not access.may_read_case(role="collector", user_id=1, assignee_id=None, team_ids={1, 2})
    assert access.may_work_case(role="collector", user_id=1, assignee_id=1)
    assert not access.may_work_case(role="collector", user_id=1, assignee_id=2)


def test_an_agency_user_reads_and_works_only_what_is_placed_with_their_own_agency_now() -> None:
    for rule in (access.may_read_case, access.may_work_case):
        assert rule(role="agency", user_id=9, assignee_id=1, user_agency_id=5, placed_agency_id=5)
        assert not rule(role="agency", user_id=9, assignee_id=1, user_agency_id=5, placed_agency_id=6)
        assert not rule(role="agency", user_id=9, assignee_id=1, user_agency_id=5, placed_agency_id=None)
        assert not rule(role="agency", user_id=9, assignee_id=9, user_agency_id=None, placed_agency_id=None)


def test_readers_read_everything_and_reveals_follow_work_except_for_the_in_house_reviewers() -> None:
    for role in ("supervisor", "compliance", "admin", "read_only"):
        assert access.may_read_case(role=role, user_id=1, assignee_id=None)
    assert not access.may_work_case(role="read_only", user_id=1, assignee_id=1)
    assert not access.may_work_case(role="compliance", user_id=1, assignee_id=1)
    assert access.may_reveal(role="compliance", may_work=False)
    assert not access.may_reveal(role="read_only", may_work=True)
    assert access.may_reveal(role="collector", may_work=True)
    assert not access.may_reveal(role="collector", may_work=False)
    assert not access.may_read_case(role="boss", user_id=1, assignee_id=1)


def test_sign_in_networks() -> None:
    assert network_allowed([], "203.0.113.9")
    assert network_allowed([], None)
    assert network_allowed(["10.0.0.0/8", "192.0.2.7"], "10.20.3.4")
    assert network_allowed(["10.0.0.0/8", "192.0.2.7/32"], "192.0.2.7")
    assert not network_allowed(["10.0.0.0/8"], "192.0.2.8")
    assert not network_allowed(["10.0.0.0/8"], None)
    assert not network_allowed(["10.0.0.0/8"], "testclient")
    assert network_allowed(["2001:db8::/32"], "2001:db8::1")


def test_a_reveal_forms_record_id_is_plain_ascii_digits_naming_a_possible_row() -> None:
    from arrears.web.routes import record_id

    assert record_id("42") == 42 and record_id(" 7 ") == 7 and record_id("2147483647") == 2147483647
    for text in ("", " ", "0", "-1", "+3", "1.0", "abc", "²", "١٢", "１２", "2147483648", "9" * 30):
        assert record_id(text) is None, text
