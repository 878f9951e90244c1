"""E-mail building: multipart plain + HTML, Message-ID from the idempotency key, US-13 opt-out footer."""

from __future__ import annotations

import pytest

from arrears.channels.schemas import OutboundMessage
from arrears.channels.senders import SmtpConfig, build_email, message_id_for
from arrears.enums import Channel
from arrears.errors import ValidationFailed

CONFIG = SmtpConfig(
    host="localhost",
    from_address="notices@lender.example",
    from_name="某某银行",
    message_id_domain="lender.example",
)


def message(**kw: object) -> OutboundMessage:
    base: dict[str, object] = dict(
        idempotency_key="outbox-7",
        channel=Channel.EMAIL,
        to="zhang.san@example.cn",
        to_name="张三",
        subject="还款提醒",
        text="您好，请按时还款。",
        html="<html><body><p>您好，请按时还款。</p></body></html>",
    )
    base.update(kw)
    return OutboundMessage(**base)  # type: ignore[arg-type]


def test_message_id_is_stable_for_an_idempotency_key() -> None:
    assert message_id_for("k", "d.example") == message_id_for("k", "d.example")
    assert message_id_for("k", "d.example") != message_id_for("k2", "d.example")
    assert build_email(message(), CONFIG)["Message-ID"] == message_id_for("outbox-7", "lender.example")


def test_email_has_plain_and_html_alternatives() -> None:
    email = build_email(message(), CONFIG)
    assert email.get_content_type() == "multipart/alternative"
    plain = email.get_body(("plain",))
    html = email.get_body(("html",))
    assert plain is not None and "请按时还款" in plain.get_content()
    assert html is not None and "<p>" in html.get_content()


def test_text_only_email_is_single_part() -> None:
    assert build_email(message(html=None), CONFIG).get_content_type() == "text/plain"


def test_us13_opt_out_footer_goes_in_both_parts_with_list_unsubscribe() -> None:
    email = build_email(message(opt_out=True, opt_out_link="https://lender.example/optout/abc"), CONFIG)
    plain = email.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = email.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "https://lender.example/optout/abc" in plain
    assert '<a href="https://lender.example/optout/abc">' in html
    assert html.index("optout") < html.index("</body>")
    assert email["List-Unsubscribe"] == "<https://lender.example/optout/abc>"


def test_no_opt_out_footer_unless_asked() -> None:
    email = build_email(message(), CONFIG)
    assert "退订" not in email.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert email["List-Unsubscribe"] is None


def test_sms_message_is_refused_by_the_email_builder() -> None:
    with pytest.raises(ValidationFailed):
        build_email(message(channel=Channel.SMS), CONFIG)
