"""The batch compliance check: one `decide` per group, the same answers as per row, windows and reschedules."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import polars as pl
import pytest

from arrears.compliance.pack import load_pack
from arrears.compliance.rules import decide
from arrears.strategy import gate

AS_OF = date(2026, 3, 2)


def planned(n: int = 1, **overrides: object) -> pl.DataFrame:
    row: dict[str, object] = {
        "channel": "sms",
        "window_start": time(9, 0),
        "window_end": time(20, 0),
        "zones": "Asia/Shanghai",
        "has_contact": True,
        "contact_kind": "mobile",
        "owner_relation": "self",
        "debt_related": False,
        "opted_out": False,
        "numbers_invalid": False,
        "time_barred": False,
        "product": "credit_card",
        "audience": "debtor",
    }
    row.update(overrides)
    return pl.DataFrame([row] * n)


def check(frame: pl.DataFrame, pack: str = "cn") -> pl.DataFrame:
    return gate.check_planned(
        frame, pack=load_pack(pack), as_of=AS_OF, portfolio_zone="Asia/Shanghai", collector_id="bank"
    )


def test_decide_runs_once_per_group_not_per_row(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []

    def counting(*args: object, **kwargs: object) -> object:
        calls.append(args)
        return decide(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gate, "decide", counting)
    frame = pl.concat([planned(600), planned(400, opted_out=True)])
    out = check(frame)
    assert len(calls) == 2
    assert out.height == 1000
    assert out.filter(pl.col("opted_out"))["gate"].unique().to_list() == ["blocked"]
    assert out.filter(~pl.col("opted_out"))["gate"].unique().to_list() == ["allowed"]


def test_allowed_contact_is_planned_at_the_window_start_in_the_debtors_zone() -> None:
    out = check(planned()).row(0, named=True)
    assert out["gate"] == "allowed"
    assert out["planned_for"] == datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # 09:00 Shanghai
    assert out["window_end_at"] == datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_cn1_quiet_hours_reschedule_to_the_next_allowed_time_inside_the_window() -> None:
    out = check(planned(window_start=time(7, 0), window_end=time(9, 0))).row(0, named=True)
    assert out["gate"] == "rescheduled"
    assert out["gate_rule_ids"] == ["CN-1"]
    assert out["planned_for"] == datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # 08:00 Shanghai


def test_all2_opt_out_blocks_with_no_time_and_the_reason() -> None:
    out = check(planned(opted_out=True)).row(0, named=True)
    assert out["gate"] == "blocked" and out["planned_for"] is None
    assert out["gate_rule_ids"] == ["ALL-2"]
    assert "ALL-2" in out["gate_reason"]


def test_no_contact_point_is_dropped_with_its_reason() -> None:
    out = check(planned(has_contact=False)).row(0, named=True)
    assert out["gate"] == "blocked" and out["gate_reason"].startswith(gate.NO_CONTACT)


def test_cn3_third_party_call_blocked_while_the_debtor_is_reachable_allowed_when_out_of_contact() -> None:
    third = {"channel": "call", "owner_relation": "emergency_contact", "audience": "third_party"}
    reachable = check(planned(**third)).row(0, named=True)
    assert reachable["gate"] == "blocked" and reachable["gate_rule_ids"] == ["CN-3"]
    lost = check(planned(numbers_invalid=True, **third)).row(0, named=True)
    assert lost["gate"] == "allowed"


def test_us1_window_opens_when_it_is_open_in_every_candidate_zone() -> None:
    zones = "America/Los_Angeles|America/New_York"
    out = check(planned(zones=zones, window_start=time(8, 0), window_end=time(20, 0)), "us-regf").row(
        0, named=True
    )
    assert out["gate"] == "allowed"
    assert out["planned_for"] == datetime(2026, 3, 2, 16, 0, tzinfo=UTC)  # 08:00 in Los Angeles
    assert out["window_end_at"] == datetime(2026, 3, 3, 1, 0, tzinfo=UTC)  # 20:00 in New York


def test_legal_referral_is_an_approval_not_a_contact() -> None:
    out = check(planned(channel=None)).row(0, named=True)
    assert out["gate"] == "approval" and out["gate_rule_ids"] == []


def test_phone_zones_are_derived_per_prefix() -> None:
    zones = gate.phone_zones(pl.Series(["+8613800138000", "+8613912345678", None, "+12125550100"]))
    assert zones.to_list() == ["Asia/Shanghai", "Asia/Shanghai", "", "America/New_York"]
