"""People who use the system (roles are enforced by the web and API layers)."""

from __future__ import annotations

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from arrears.models.base import Base, Timestamped


class AppUser(Timestamped, Base):
    __tablename__ = "app_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="collector")
    password_hash: Mapped[str | None] = mapped_column(String(200))
    locale: Mapped[str] = mapped_column(String(16), default="zh_CN")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # An agency user belongs to one agency and sees only the cases placed with it, while placed (PI-4).
    agency_id: Mapped[int | None] = mapped_column(ForeignKey("agency.id"))
