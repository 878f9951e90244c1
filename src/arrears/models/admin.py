"""Changes an administrator makes to the product's definitions (rule packs, strategies) from the desk."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from arrears.models.base import Base


class ConfigChange(Base):
    """One saved version of a rule pack or a strategy: who saved it, when, and the whole text.

    Append-only: the file in the operator directory is what the system runs; these rows are its history.
    """

    __tablename__ = "config_change"
    __table_args__ = (Index("ix_config_change_kind_name_at", "kind", "name", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # rule_pack, strategy
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int | None] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    content_sha256: Mapped[str] = mapped_column(String(64))
    path: Mapped[str] = mapped_column(String(800))
    changed_by_id: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"))
    at: Mapped[datetime] = mapped_column()
