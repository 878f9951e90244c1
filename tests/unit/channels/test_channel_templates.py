"""Template linting and rendering: placeholder sets per kind (CN-4), required content (CN-5, CN-8)."""

from __future__ import annotations

import pytest

from arrears.channels.templates import (
    TemplateKind,
    default_context,
    default_template,
    default_templates,
    opt_out_text,
    placeholders_in,
    render,
    render_parts,
    resolve_locale,
    sms_length,
    validate_parts,
    validate_template,
)
from arrears.enums import Channel
from arrears.errors import NotFound, ValidationFailed

CONTEXT = {
    "debtor_name": "张三",
    "recipient_name": "李四",
    "amount_due": "¥1,234.50",
    "due_date": "2025-03-05",
    "balance": "¥5,000.00",
    "overdue_days": "1",
    "creditor_name": "某某银行",
    "institution_name": "某某银行信用卡中心",
    "institution_phone": "400-800-1234",
    "institution_address": "上海市浦东新区世纪大道100号",
    "payment_instructions": "登录App还款",
    "self_service_link": "https://pay.example.cn/c/AB12",
    "case_reference": "C-2025-0001",
    "account_reference": "LN-0001",
    "reason": "逾期未还",
    "letter_date": "2025年3月10日",
}


def codes(problems: list) -> list[str]:
    return [p.code for p in problems]


@pytest.mark.parametrize("template", default_templates(), ids=lambda t: f"{t.locale}-{t.id}")
def test_every_shipped_default_template_passes_the_linter(template) -> None:
    assert validate_parts(template.parts, template.channel, template.kind) == []


@pytest.mark.parametrize("template", default_templates(), ids=lambda t: f"{t.locale}-{t.id}")
def test_every_shipped_default_template_renders_without_missing_placeholders(template) -> None:
    parts = render_parts(template, CONTEXT | default_context(template.locale))
    assert all(text.strip() for text in parts.values())
    assert "{{" not in "".join(parts.values())


def test_defaults_ship_in_zh_cn_and_en_with_the_five_messages() -> None:
    ids = {(t.locale, t.id) for t in default_templates()}
    for locale in ("zh_CN", "en"):
        for tid in (
            "pre_due_reminder",
            "day1_reminder",
            "formal_notice",
            "email_reminder",
            "third_party_message",
        ):
            assert (locale, tid) in ids


def test_cn4_third_party_template_using_a_debt_placeholder_is_refused() -> None:
    problems = validate_template(
        "{{ institution_name }}: {{ debtor_name }} owes {{ amount_due }}",
        Channel.SMS,
        TemplateKind.THIRD_PARTY,
    )
    assert codes(problems) == ["debt_placeholder_for_third_party"]
    assert problems[0].rule_ids == ("CN-4",)
    assert problems[0].placeholder == "amount_due"
    assert problems[0].message_zh


@pytest.mark.parametrize(
    "name", ["balance", "due_date", "creditor_name", "case_reference", "self_service_link"]
)
def test_cn4_every_debt_detail_is_refused_for_third_parties(name: str) -> None:
    problems = validate_template(f"{{{{ institution_name }}}} {{{{ {name} }}}}", "sms", "third_party")
    assert codes(problems) == ["debt_placeholder_for_third_party"]


def test_cn4_shipped_third_party_message_discloses_no_debt_detail() -> None:
    for locale in ("zh_CN", "en"):
        tpl = default_template("third_party_message", locale)
        text = render_parts(tpl, CONTEXT)["body"]
        for secret in ("¥1,234.50", "¥5,000.00", "某某银行信用卡中心欠", "2025-03-05", "C-2025-0001"):
            assert secret not in text


def test_unknown_placeholder_is_reported_with_its_name() -> None:
    problems = validate_template("{{ institution_name }} {{ debtor_nmae }}", "sms", "debtor")
    assert codes(problems) == ["unknown_placeholder"]
    assert problems[0].placeholder == "debtor_nmae"


def test_syntax_error_is_reported_with_its_line() -> None:
    problems = validate_template("{{ institution_name }}\n{% if debtor_name %}unclosed", "sms", "debtor")
    assert codes(problems) == ["syntax_error"]
    assert problems[0].line == 2


def test_cn5_debtor_message_must_name_the_institution() -> None:
    problems = validate_template("{{ debtor_name }}, please pay {{ amount_due }}", "sms", "debtor")
    assert codes(problems) == ["missing_required_placeholder"]
    assert problems[0].rule_ids == ("CN-5",)


def test_cn8_letter_without_legal_basis_or_dispute_route_is_refused() -> None:
    tpl = default_template("formal_notice", "zh_CN")
    body = tpl.parts["body"].replace("{{ legal_basis }}", "").replace("{{ dispute_instructions }}", "")
    problems = validate_parts({"title": tpl.parts["title"], "body": body}, "letter", "debtor")
    assert sorted(p.placeholder or "" for p in problems) == ["dispute_instructions", "legal_basis"]
    assert all(p.rule_ids == ("CN-8",) for p in problems)


def test_cn8_does_not_apply_to_sms() -> None:
    assert validate_template("{{ institution_name }} {{ debtor_name }}", "sms", "debtor") == []


def test_required_placeholders_count_across_email_parts() -> None:
    parts = {
        "subject": "{{ institution_name }}",
        "text": "{{ debtor_name }}",
        "html": "<p>{{ debtor_name }}</p>",
    }
    assert validate_parts(parts, "email", "debtor") == []


def test_templates_may_not_include_other_templates() -> None:
    problems = validate_template('{{ institution_name }}{% include "x.txt" %}', "sms", "debtor")
    assert "template_reference" in codes(problems)


def test_call_channel_has_no_templates() -> None:
    assert codes(validate_template("hi", Channel.CALL, "debtor")) == ["channel_without_templates"]


def test_placeholders_in_ignores_loop_variables() -> None:
    assert placeholders_in("{% for x in [1, 2] %}{{ x }}{% endfor %}{{ debtor_name }}") == {"debtor_name"}


def test_render_refuses_a_missing_placeholder_instead_of_printing_nothing() -> None:
    with pytest.raises(ValidationFailed) as err:
        render("Dear {{ debtor_name }}", {})
    assert err.value.code == "template_undefined"


def test_render_is_sandboxed() -> None:
    with pytest.raises(ValidationFailed) as err:
        render("{{ debtor_name.__class__.__mro__ }}", {"debtor_name": "x"})
    assert err.value.code in {"template_forbidden", "template_undefined"}


def test_render_reports_syntax_errors_as_validation_failures() -> None:
    with pytest.raises(ValidationFailed) as err:
        render("{{ ", {})
    assert err.value.code == "template_syntax_error"


def test_html_parts_are_escaped_and_text_parts_are_not() -> None:
    tpl = default_template("email_reminder", "en")
    parts = render_parts(tpl, CONTEXT | {"debtor_name": "<b>Ann & Bob</b>"})
    assert "&lt;b&gt;Ann &amp; Bob&lt;/b&gt;" in parts["html"]
    assert "<b>Ann & Bob</b>" in parts["text"]


def test_locale_resolution_falls_back_to_zh_cn() -> None:
    assert resolve_locale("en_US") == "en"
    assert resolve_locale("zh-CN") == "zh_CN"
    assert resolve_locale("fr") == "zh_CN"
    assert resolve_locale(None) == "zh_CN"
    assert default_template("day1_reminder", "fr").locale == "zh_CN"


def test_unknown_default_template_is_not_found() -> None:
    with pytest.raises(NotFound):
        default_template("no_such_template")


def test_us13_opt_out_text_in_both_languages_with_link() -> None:
    assert "退订" in opt_out_text("zh_CN")
    assert "https://x.example/o" in opt_out_text("en", "https://x.example/o")


def test_shipped_sms_fit_in_the_configured_segment_budget() -> None:
    for tpl in default_templates():
        if tpl.channel is Channel.SMS:
            text = render_parts(tpl, CONTEXT)["body"]
            assert sms_length(text).segments <= 3, (tpl.id, tpl.locale)


@pytest.mark.parametrize("locale", ["zh_CN", "en"])
def test_without_a_self_service_link_the_shipped_templates_leave_out_its_sentence(locale: str) -> None:
    for template in default_templates(locale):
        names = placeholders_in(" ".join(template.parts.values()))
        if "self_service_link" not in names:
            continue
        with_link = {name: CONTEXT.get(name, "值") for name in names} | {"opt_out_text": opt_out_text(locale)}
        without = {**with_link, "self_service_link": ""}
        for part, text in render_parts(template, without).items():
            assert "访问 查询" not in text and "访问，" not in text and "详情：，" not in text, (
                template.id,
                part,
            )
            assert "visit  to" not in text and "see \n" not in text and 'href=""' not in text, (
                template.id,
                part,
            )
            assert not text.rstrip().endswith(("或访问", "or see", "：")), (template.id, part)
        shown = " ".join(render_parts(template, with_link).values())
        assert with_link["self_service_link"] in shown, template.id
