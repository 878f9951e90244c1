"""Every table, imported here so Alembic and `Base.metadata` see all of them."""

from arrears.models.account import Account, AccountFlag, Case, Instalment
from arrears.models.base import Base, Timestamped, UTCDateTime
from arrears.models.contact import (
    AccountLimitation,
    ChannelOptOut,
    ContactAttempt,
    ContactConsent,
    InconvenientTime,
)
from arrears.models.intake import ImportBatch, ImportChange
from arrears.models.party import ContactPoint, Creditor, Debtor, Portfolio
from arrears.models.user import AppUser

__all__ = [
    "Account",
    "AccountFlag",
    "AccountLimitation",
    "AppUser",
    "Base",
    "Case",
    "ChannelOptOut",
    "ContactAttempt",
    "ContactConsent",
    "ContactPoint",
    "Creditor",
    "Debtor",
    "ImportBatch",
    "ImportChange",
    "InconvenientTime",
    "Instalment",
    "Portfolio",
    "Timestamped",
    "UTCDateTime",
]
