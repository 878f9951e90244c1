"""The desk's two catalogs say the same things, and the case access rules (least privilege, PI-9)."""

from __future__ import annotations

import pytest

from arrears.enums import Role
from arrears.users import access
from arrears.web.i18n import Translator, catalog


def _keys(table: dict[str, object], prefix: str = "") -> set[str]:
    keys: set[str] = set()
    for key, value in table.items():
        if isinstance(value, dict):
            keys |= _keys(value, f"{prefix}{key}.")
        else:
            keys.add(prefix + key)
    return keys


def test_zh_cn_and_en_catalogs_have_the_same_keys() -> None:
    assert _keys(catalog("zh_CN")) == _keys(catalog("en"))


def test_every_role_has_a_label_in_both_languages() -> None:
    for locale in ("zh_CN", "en"):
        t = Translator(locale)
        assert all(t.label("role_names", r.value) != r.value for r in Role)


def test_an_unknown_locale_falls_back_to_chinese_and_an_unknown_key_to_itself() -> None:
    t = Translator("fr")
    assert t.locale == "zh_CN" and t("sign_in") == "登录" and t("no_such_key") == "no_such_key"
    assert Translator("en")("case_title", id=7) == "Case 7"


@pytest.mark.parametrize("role", ["supervisor", "compliance", "admin", "read_only"])
def test_pi_9_readers_of_every_case(role: str) -> None:
    assert access.may_read_case(role=role, user_id=1, assignee_id=2)
    assert access.may_read_case(role=role, user_id=1, assignee_id=None)


def test_pi_9_a_collector_reads_and_works_only_their_assigned_cases() -> None:
    assert access.may_read_case(role="collector", user_id=1, assignee_id=1)
    assert access.may_work_case(role="collector", user_id=1, assignee_id=1)
    assert not access.may_read_case(role="collector", user_id=1, assignee_id=2)
    assert not access.may_read_case(role="collector", user_id=1, assignee_id=None)
    assert not access.may_work_case(role="collector", user_id=1, assignee_id=2)


def test_pi_4_an_agency_user_reads_no_case_and_readers_cannot_work() -> None:
    assert not access.may_read_case(role="agency", user_id=1, assignee_id=1)
    for role in ("compliance", "read_only", "agency", "nobody"):
        assert not access.may_work_case(role=role, user_id=1, assignee_id=1)
    assert access.may_work_case(role="supervisor", user_id=1, assignee_id=2)


def test_the_idle_notice_says_how_many_wait_which_rule_blocks_and_when_work_resumes() -> None:
    from datetime import UTC, datetime

    from arrears.compliance.schemas import Reason
    from arrears.strategy.queue_service import Idle
    from arrears.web.views import idle_notice

    quiet = Reason(
        rule_id="CN-1", code="quiet_hours", zh="22:00至次日8:00不得催收", en="no contact 22:00-08:00"
    )
    idle = Idle(waiting=3, blocked=((quiet, 2),), resumes_at=datetime(2026, 3, 2, 0, 0, tzinfo=UTC))
    zh = idle_notice(idle, Translator("zh_CN"))
    assert "3 个任务的时间窗口尚未开始" in zh and "2 个任务此刻被 CN-1 阻止：22:00至次日8:00不得催收" in zh
    assert "2026-03-02 08:00" in zh  # Shanghai time
    en = idle_notice(idle, Translator("en"))
    assert "3 wait for their window" in en and "2 blocked now by CN-1: no contact 22:00-08:00" in en
    assert idle_notice(Idle(waiting=0, blocked=(), resumes_at=None), Translator("en")) == (
        "You have no open calls or visits."
    )
