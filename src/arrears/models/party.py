"""Creditors, portfolios, debtors and their contact points."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from arrears.models.base import Base, Timestamped


class Creditor(Timestamped, Base):
    __tablename__ = "creditor"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32), default="lender")
    # CN-30: licensed financial institutions are outside the private-lending cap.
    licensed_lender: Mapped[bool] = mapped_column(Boolean, default=True)
    phone: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(Text)

    portfolios: Mapped[list[Portfolio]] = relationship(back_populates="creditor")


class Portfolio(Timestamped, Base):
    __tablename__ = "portfolio"

    id: Mapped[int] = mapped_column(primary_key=True)
    creditor_id: Mapped[int] = mapped_column(ForeignKey("creditor.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    timezone: Mapped[str] = mapped_column(String(64), default="Asia/Shanghai")
    rule_pack: Mapped[str] = mapped_column(String(64), default="cn")
    strategy: Mapped[str] = mapped_column(String(64), default="default")
    locale: Mapped[str] = mapped_column(String(16), default="zh_CN")
    # The daily accrual brought every account of the portfolio that follows it this far (`Account`).
    ledger_accrued_through: Mapped[date | None] = mapped_column(Date)

    creditor: Mapped[Creditor] = relationship(back_populates="portfolios")


class Debtor(Timestamped, Base):
    """A person or company that owes; one row per real debtor across portfolios."""

    __tablename__ = "debtor"
    __table_args__ = (Index("ix_debtor_id_type_national_id", "id_type", "national_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # Natural key used to de-duplicate at intake: "id:<type>:<number>" or "mobile:<e164>".
    dedup_key: Mapped[str] = mapped_column(String(80), unique=True)
    kind: Mapped[str] = mapped_column(String(16), default="person")
    name: Mapped[str] = mapped_column(String(200))
    id_type: Mapped[str | None] = mapped_column(String(16))
    # Stored whole so that it can be verified; every view masks it (PI-6).
    national_id: Mapped[str | None] = mapped_column(String(40))
    date_of_birth: Mapped[date | None] = mapped_column(Date)
    gender: Mapped[str | None] = mapped_column(String(8))
    address: Mapped[str | None] = mapped_column(Text)
    employer_name: Mapped[str | None] = mapped_column(String(200))
    employer_address: Mapped[str | None] = mapped_column(Text)
    declared_monthly_income_minor: Mapped[int | None] = mapped_column(BigInteger)
    declared_assets: Mapped[str | None] = mapped_column(Text)
    preferred_language: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))

    contact_points: Mapped[list[ContactPoint]] = relationship(
        back_populates="debtor", primaryjoin="Debtor.id == foreign(ContactPoint.debtor_id)"
    )


class ContactPoint(Timestamped, Base):
    """A phone number, e-mail or address, and whose it is."""

    __tablename__ = "contact_point"
    __table_args__ = (
        UniqueConstraint("debtor_id", "kind", "value", "owner_relation"),
        Index("ix_contact_point_kind_value", "kind", "value"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # debtor.id; no database FK: the import writes contact points a million at a time (see models/account.py)
    debtor_id: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))
    value: Mapped[str] = mapped_column(String(400))
    extension: Mapped[str | None] = mapped_column(String(16))
    owner_relation: Mapped[str] = mapped_column(String(24), default="self")
    owner_name: Mapped[str | None] = mapped_column(String(200))
    # CN-3: a third party is debt-related (spouse where the debt funded the household, guarantor) or not.
    debt_related: Mapped[bool] = mapped_column(Boolean, default=False)
    verified: Mapped[bool] = mapped_column(Boolean, default=False)
    is_valid: Mapped[bool] = mapped_column(Boolean, default=True)
    source: Mapped[str] = mapped_column(String(32), default="import")
    timezone: Mapped[str | None] = mapped_column(String(64))
    consent_to_contact: Mapped[bool] = mapped_column(Boolean, default=False)
    consent_at: Mapped[datetime | None] = mapped_column()
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None] = mapped_column()

    debtor: Mapped[Debtor] = relationship(
        back_populates="contact_points", primaryjoin="foreign(ContactPoint.debtor_id) == Debtor.id"
    )
