"""Channel tables: message templates (per channel, locale and kind, versioned) and a portfolio's senders."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from arrears.models.base import Base, Timestamped


class MessageTemplate(Timestamped, Base):
    """One version of a template; the newest version of (portfolio, code, channel, locale) is in use.

    ``portfolio_id`` NULL is a template for every portfolio. Rows are never changed: saving makes a new
    version, so the outbox can say which version a message was rendered from.
    """

    __tablename__ = "message_template"
    __table_args__ = (
        UniqueConstraint("portfolio_id", "code", "channel", "locale", "version"),
        Index("ix_message_template_code_channel_locale", "code", "channel", "locale"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    portfolio_id: Mapped[int | None] = mapped_column(ForeignKey("portfolio.id"))
    code: Mapped[str] = mapped_column(String(100))  # the strategy's template name, e.g. pre_due_reminder
    channel: Mapped[str] = mapped_column(String(16))
    locale: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))  # debtor, third_party, legal (CN-4)
    version: Mapped[int] = mapped_column(Integer)
    parts: Mapped[dict[str, Any]] = mapped_column(JSON)  # body; or subject/text/html; or title/body
    stage: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str | None] = mapped_column(String(64))


class ChannelSetting(Timestamped, Base):
    """A portfolio's sender settings (no secrets: those come from the environment, named here).

    ``smtp``: host, port, security, username, from_address, from_name, reply_to, password_env ...
    ``sms``: name (the webhook path), preset, url, secrets_env, webhook_secret_env, overrides ...
    """

    __tablename__ = "channel_setting"

    portfolio_id: Mapped[int] = mapped_column(
        ForeignKey("portfolio.id"), primary_key=True, autoincrement=False
    )
    smtp: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    sms: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    letters: Mapped[dict[str, Any] | None] = mapped_column(JSON)
