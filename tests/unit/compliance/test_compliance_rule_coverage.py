"""Every rule id of both rule packs has a scenario test named after it, and the ones with no other home
(ALL-3 in us-regf, the retention periods CN-8 / CN-33 / PI-10 / US-9) have theirs here."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

from compliance_builders import CN, DEBTOR_US, US, attempt, ny, prior

from arrears.compliance.pack import load_pack
from arrears.compliance.periods import retention_until
from arrears.compliance.rules import decide
from arrears.compliance.schemas import Attempt, Context, Outcome, TemplateKind
from arrears.enums import Channel

TESTS = Path(__file__).resolve().parents[2]
PACKS = Path(__file__).resolve().parents[3] / "src" / "arrears" / "compliance" / "packs"
RULE_ID = re.compile(r'"((?:CN|US|ALL|PI)-\d+)"')


def _pack_rule_ids() -> dict[str, set[str]]:
    return {p.stem: set(RULE_ID.findall(p.read_text(encoding="utf-8"))) for p in sorted(PACKS.glob("*.toml"))}


def test_every_rule_id_of_both_packs_has_a_scenario_test_named_after_it() -> None:
    names = [n for p in TESTS.rglob("test_*.py") for n in re.findall(r"def (test_\w+)", p.read_text("utf-8"))]
    ids = _pack_rule_ids()
    assert set(ids) >= {"cn", "us-regf"}
    for pack in ("cn", "us-regf"):
        assert load_pack(pack).name == pack and ids[pack]
    missing = {
        rule
        for rules in ids.values()
        for rule in rules
        if not any(re.search(rf"(^|_){rule.lower().replace('-', '')}(_|$)", n) for n in names)
    }
    assert not missing, f"rule ids without a scenario test named after them: {sorted(missing)}"


# ALL-3 (us-regf): FDCPA harassment and false representation, linted like CN-5 / CN-6 in cn.
DISCLOSED = "This is a debt collector. Reply STOP to opt out."


def _message(text: str, kind: TemplateKind | None = None) -> Attempt:
    return attempt(ny(2026, 3, 2, 11), DEBTOR_US, channel=Channel.EMAIL, text=text, template_kind=kind)


def test_all3_us_pack_blocks_impersonation_threats_insults_and_exposure() -> None:
    talked = [prior(ny(2026, 2, 20, 11), Outcome.RIGHT_PARTY, DEBTOR_US)]
    assert decide(_message(DISCLOSED), talked, Context(), US).allowed
    for phrase in (
        "This is the police calling about your account.",
        "You will go to jail if you do not pay.",
        "Pay now, deadbeat.",
        "We will tell your employer.",
    ):
        d = decide(_message(f"{DISCLOSED} {phrase}"), talked, Context(), US)
        assert not d.allowed and d.rule_ids == ("ALL-3",), (phrase, d.rule_ids)
        assert d.reasons[0].zh and d.reasons[0].en


def test_all3_a_lawyers_letter_may_say_it_comes_from_a_law_firm() -> None:
    talked = [prior(ny(2026, 2, 20, 11), Outcome.RIGHT_PARTY, DEBTOR_US)]
    text = f"{DISCLOSED} Smith & Co, attorney at law, writes on behalf of our client."
    assert decide(_message(text), talked, Context(), US).rule_ids == ("ALL-3",)
    letter = decide(_message(text, TemplateKind.LAWYER_LETTER), talked, Context(), US)
    assert "ALL-3" not in letter.rule_ids


# Retention periods: data of the packs the retention job reads (CN-8, CN-33, PI-10, US-9).


def test_cn8_credit_card_collection_records_are_kept_two_years_after_collection_ends() -> None:
    assert retention_until("credit_card_collection_record", date(2026, 3, 2), CN) == (
        date(2028, 3, 2),
        "CN-8",
    )


def test_cn33_negative_credit_data_is_kept_five_years_after_the_default_ends() -> None:
    assert retention_until("negative_credit_data", date(2026, 2, 28), CN) == (date(2031, 2, 28), "CN-33")


def test_pi10_processing_records_are_kept_three_years() -> None:
    assert retention_until("processing_record", date(2026, 3, 2), CN) == (date(2029, 3, 2), "PI-10")


def test_us9_records_three_years_after_the_last_activity_and_recordings_three_years_from_the_call() -> None:
    assert retention_until("collection_record", date(2026, 3, 2), US) == (date(2029, 3, 2), "US-9")
    assert retention_until("call_recording", date(2026, 3, 2), US) == (date(2029, 3, 2), "US-9")
