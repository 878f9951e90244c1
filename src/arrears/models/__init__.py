"""Every table, imported here so Alembic and `Base.metadata` see all of them."""

from arrears.models.account import Account, AccountFlag, Case, Instalment
from arrears.models.base import Base, Timestamped, UTCDateTime
from arrears.models.casework import (
    Agency,
    Approval,
    Arrangement,
    ArrangementAccount,
    ArrangementInstalment,
    ArrangementWaiver,
    Dispute,
    Document,
    HoldEvent,
    LegalCase,
    LegalCaseAccount,
    LegalCost,
    LegalMilestone,
    Placement,
    Promise,
)
from arrears.models.contact import (
    AccountLimitation,
    ChannelOptOut,
    ContactAttempt,
    ContactConsent,
    InconvenientTime,
)
from arrears.models.intake import ImportBatch, ImportChange
from arrears.models.ledger import LedgerSetting, Payment, Posting
from arrears.models.party import ContactPoint, Creditor, Debtor, Portfolio
from arrears.models.user import AppUser

__all__ = [
    "Account",
    "AccountFlag",
    "AccountLimitation",
    "Agency",
    "AppUser",
    "Approval",
    "Arrangement",
    "ArrangementAccount",
    "ArrangementInstalment",
    "ArrangementWaiver",
    "Base",
    "Case",
    "ChannelOptOut",
    "ContactAttempt",
    "ContactConsent",
    "ContactPoint",
    "Creditor",
    "Debtor",
    "Dispute",
    "Document",
    "HoldEvent",
    "ImportBatch",
    "ImportChange",
    "InconvenientTime",
    "Instalment",
    "LedgerSetting",
    "LegalCase",
    "LegalCaseAccount",
    "LegalCost",
    "LegalMilestone",
    "Payment",
    "Placement",
    "Portfolio",
    "Posting",
    "Promise",
    "Timestamped",
    "UTCDateTime",
]
