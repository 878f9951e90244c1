"""Every table, imported here so Alembic and `Base.metadata` see all of them."""

from arrears.models.account import Account, AccountFlag, Case, Instalment
from arrears.models.admin import ConfigChange
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
    EvidenceBundle,
    HoldEvent,
    LegalCase,
    LegalCaseAccount,
    LegalCost,
    LegalMilestone,
    Placement,
    Promise,
)
from arrears.models.channels import ChannelSetting, MessageTemplate
from arrears.models.contact import (
    AccountLimitation,
    ChannelOptOut,
    ContactAttempt,
    ContactConsent,
    InconvenientTime,
)
from arrears.models.intake import ImportBatch, ImportChange, ImportJob
from arrears.models.ledger import LedgerSetting, Payment, Posting
from arrears.models.party import ContactPoint, Creditor, Debtor, Portfolio
from arrears.models.reports import REPORT_INDEXES
from arrears.models.strategy import (
    AccountActionState,
    AccountStrategyState,
    AllocationEvent,
    CollectorProfile,
    OutboxMessage,
    PortfolioStrategy,
    StrategyDecision,
    StrategyRun,
    StrategyRunLock,
    WorkItem,
)
from arrears.models.user import AppUser
from arrears.models.users_auth import AccessLog, LoginAttempt, UserSession

__all__ = [
    "REPORT_INDEXES",
    "AccessLog",
    "Account",
    "AccountActionState",
    "AccountFlag",
    "AccountLimitation",
    "AccountStrategyState",
    "Agency",
    "AllocationEvent",
    "AppUser",
    "Approval",
    "Arrangement",
    "ArrangementAccount",
    "ArrangementInstalment",
    "ArrangementWaiver",
    "Base",
    "Case",
    "ChannelOptOut",
    "ChannelSetting",
    "CollectorProfile",
    "ConfigChange",
    "ContactAttempt",
    "ContactConsent",
    "ContactPoint",
    "Creditor",
    "Debtor",
    "Dispute",
    "Document",
    "EvidenceBundle",
    "HoldEvent",
    "ImportBatch",
    "ImportChange",
    "ImportJob",
    "InconvenientTime",
    "Instalment",
    "LedgerSetting",
    "LegalCase",
    "LegalCaseAccount",
    "LegalCost",
    "LegalMilestone",
    "LoginAttempt",
    "MessageTemplate",
    "OutboxMessage",
    "Payment",
    "Placement",
    "Portfolio",
    "PortfolioStrategy",
    "Posting",
    "Promise",
    "StrategyDecision",
    "StrategyRun",
    "StrategyRunLock",
    "Timestamped",
    "UTCDateTime",
    "UserSession",
    "WorkItem",
]
