"""Every table, imported here so Alembic and `Base.metadata` see all of them."""

from arrears.models.account import Account, AccountFlag, Case, Instalment
from arrears.models.base import Base, Timestamped, UTCDateTime
from arrears.models.intake import ImportBatch, ImportChange
from arrears.models.ledger import LedgerSetting, Payment, Posting
from arrears.models.party import ContactPoint, Creditor, Debtor, Portfolio
from arrears.models.user import AppUser

__all__ = [
    "Account",
    "AccountFlag",
    "AppUser",
    "Base",
    "Case",
    "ContactPoint",
    "Creditor",
    "Debtor",
    "ImportBatch",
    "ImportChange",
    "Instalment",
    "LedgerSetting",
    "Payment",
    "Portfolio",
    "Posting",
    "Timestamped",
    "UTCDateTime",
]
