"""Text linting (CN-4, CN-5, CN-6, CN-8, CN-22, US-8, US-11, US-13)."""

from __future__ import annotations

from compliance_builders import CN, US
from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.compliance import lint
from arrears.compliance.lint import lint_text
from arrears.compliance.pack import RulePack
from arrears.compliance.schemas import TemplateKind
from arrears.enums import Channel

NOTICE = (
    "{{ debtor_name }}您好：截至今日，您的欠款余额为{{ balance }}元，因逾期未还，依据《领用合约》"
    "约定，特此通知。如有异议，请联系{{ institution_name }}，联系电话{{ institution_phone }}。"
)


def test_cn6_finding_has_span_highlight_and_both_languages() -> None:
    text = "你这个老赖赶紧还钱"
    r = lint_text(text, pack=CN, kind=TemplateKind.NOTE)
    (f,) = r.findings
    assert (f.rule_id, f.category, f.start, f.end) == ("CN-6", "insult", 3, 5)
    assert text[f.start : f.end] == "老赖" and f.highlighted == "你这个【老赖】赶紧还钱"
    assert "侮辱" in f.zh and "insult" in f.en and not r.ok


def test_cn6_borrowing_elsewhere_and_spaced_out_phrases_are_caught() -> None:
    r = lint_text("可以去借 网 贷还上", pack=CN, kind=TemplateKind.NOTE)
    assert [f.category for f in r.findings] == ["borrow_elsewhere"]
    r = lint_text("Why not take out another loan to pay us?", pack=CN, kind=TemplateKind.NOTE)
    assert r.rule_ids == ("CN-6",)


def test_cn5_impersonation_zh_and_en_but_lawyers_may_write_lawyer_letters() -> None:
    assert lint_text("我是派出所的", pack=CN, kind=TemplateKind.NOTE).rule_ids == ("CN-5",)
    assert lint_text("This is a COURT ORDER.", pack=CN, kind=TemplateKind.NOTE).rule_ids == ("CN-5",)
    assert lint_text("本律师受托发出律师函", pack=CN, kind=TemplateKind.NOTE).rule_ids == ("CN-5",)
    assert lint_text("本律师受托发出律师函", pack=CN, kind=TemplateKind.LAWYER_LETTER).ok


def test_english_phrases_match_whole_words_only() -> None:
    assert lint_text("Our privacy policy and the judgement-free line", pack=CN, kind=TemplateKind.NOTE).ok


def test_cn8_collection_notice_requires_every_element() -> None:
    assert lint_text(NOTICE, pack=CN, kind=TemplateKind.COLLECTION_NOTICE, first_contact=True).ok
    bare = "您好，请尽快还款。"
    r = lint_text(bare, pack=CN, kind=TemplateKind.COLLECTION_NOTICE)
    missing = {f.category for f in r.findings}
    assert missing == {
        "debtor_name",
        "balance",
        "reason",
        "legal_basis",
        "rights_and_dispute",
        "institution_contact",
    }
    assert all(f.start is None and f.rule_id == "CN-8" for f in r.findings)


def test_cn5_institution_may_be_a_fact_value_in_a_rendered_text() -> None:
    text = "您好，这里是星河银行，请尽快还款。"
    assert not lint_text(text, pack=CN, kind=TemplateKind.DEBTOR, first_contact=True).ok
    assert lint_text(
        text, pack=CN, kind=TemplateKind.DEBTOR, first_contact=True, facts={"institution": "星河银行"}
    ).ok


def test_cn4_third_party_text_may_not_carry_amounts_creditors_or_overdue_words() -> None:
    for text in (
        "请转告他尽快处理欠款",
        "请转告他：金额 ¥3,000",
        "请转告他 1200元",
        "Tell him {{ creditor_name }} called",
    ):
        r = lint_text(text, pack=CN, kind=TemplateKind.THIRD_PARTY)
        assert r.rule_ids == ("CN-4",), text
    assert lint_text("您好，请转告张先生尽快回电，谢谢。", pack=CN, kind=TemplateKind.THIRD_PARTY).ok


def test_cn22_time_barred_text_may_not_mention_legal_action() -> None:
    text = "这里是{{ institution }}，否则将起诉"
    assert lint_text(text, pack=CN, kind=TemplateKind.DEBTOR).ok
    assert lint_text(text, pack=CN, kind=TemplateKind.DEBTOR, time_barred=True).rule_ids == ("CN-22",)


def test_us11_and_us13_requirements() -> None:
    r = lint_text(
        "Please call us.", pack=US, kind=TemplateKind.DEBTOR, channel=Channel.SMS, first_contact=True
    )
    assert {f.category for f in r.findings} == {
        "debt_collector_disclosure",
        "information_use_notice",
        "opt_out",
    }
    ok = "This is a debt collector. Reply STOP to opt out."
    assert lint_text(ok, pack=US, kind=TemplateKind.DEBTOR, channel=Channel.SMS).ok
    assert lint_text(
        "This is a debt collector.", pack=US, kind=TemplateKind.DEBTOR, channel=Channel.LETTER
    ).ok


def test_required_content_follows_the_locale() -> None:
    text = "{{ debtor_name }} balance {{ x }}"
    r = lint_text(text, pack=CN, kind=TemplateKind.COLLECTION_NOTICE, locale="zh_CN")
    assert "balance" in {f.category for f in r.findings}
    r = lint_text(text, pack=CN, kind=TemplateKind.COLLECTION_NOTICE, locale="en")
    assert "balance" not in {f.category for f in r.findings}


_PHRASES = [p for entry in CN.lint.forbidden + US.lint.forbidden for p in entry.zh + entry.en]


@st.composite
def _texts(draw: st.DrawFn) -> str:
    """Texts around forbidden phrases: spaced out, in any case, with dotted and dotless i, cut short,
    next to letters, among arbitrary characters."""
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        phrase = draw(st.sampled_from(_PHRASES))
        cased = "".join(
            draw(
                st.sampled_from(
                    [
                        ch,
                        ch.upper(),
                        ch.lower(),
                        "\u0130" if ch in "iI" else ch,
                        "\u0131" if ch in "iI" else ch,
                    ]
                )
            )
            for ch in phrase
        )
        spaced = (
            draw(st.sampled_from(["", " ", "\u3000", "\n"])).join(cased) if draw(st.booleans()) else cased
        )
        cut = spaced[: draw(st.integers(1, len(spaced)))] if draw(st.booleans()) else spaced
        parts.append(cut)
        parts.append(draw(st.text(max_size=5)))
    return "".join(parts)


@settings(max_examples=400)
@given(text=_texts(), pack=st.sampled_from([CN, US]), kind=st.sampled_from(list(TemplateKind)))
def test_the_quick_phrase_check_finds_whatever_the_full_scan_finds(
    text: str, pack: RulePack, kind: TemplateKind
) -> None:
    """The folded-substring check only skips scans that would find nothing: the forbidden findings are
    those of scanning every entry's pattern."""
    compiled = lint._compiled(pack)
    full = [
        (f.rule_id, f.category, f.start, f.end)
        for (entry, pattern) in compiled.forbidden
        if kind not in entry.except_kinds
        for f in lint._span_findings(text, pattern, entry.id, "lint_forbidden", entry.category)
    ]
    got = [
        (f.rule_id, f.category, f.start, f.end)
        for f in lint_text(text, pack=pack, kind=kind).findings
        if f.code == "lint_forbidden"
    ]
    assert sorted(got, key=str) == sorted(full, key=str)


def test_every_letter_re_ignorecase_equates_with_an_ascii_letter_folds_to_it() -> None:
    """What the quick check rests on, over all of Unicode: `_fold` equates whatever re.IGNORECASE does
    for ASCII letters and digits."""
    import re
    import string
    import sys

    for a in string.ascii_lowercase + string.digits:
        pattern = re.compile(re.escape(a), re.IGNORECASE)
        for point in range(sys.maxunicode + 1):
            ch = chr(point)
            if pattern.fullmatch(ch):
                assert lint._fold(ch) == a, (a, hex(point))
