"""Every table, imported here so Alembic and `Base.metadata` see all of them."""

from arrears.models.account import Account, AccountFlag, Case, Instalment
from arrears.models.base import Base, Timestamped, UTCDateTime
from arrears.models.intake import ImportBatch, ImportChange
from arrears.models.party import ContactPoint, Creditor, Debtor, Portfolio
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

__all__ = [
    "Account",
    "AccountActionState",
    "AccountFlag",
    "AccountStrategyState",
    "AllocationEvent",
    "AppUser",
    "Base",
    "Case",
    "CollectorProfile",
    "ContactPoint",
    "Creditor",
    "Debtor",
    "ImportBatch",
    "ImportChange",
    "Instalment",
    "OutboxMessage",
    "Portfolio",
    "PortfolioStrategy",
    "StrategyDecision",
    "StrategyRun",
    "StrategyRunLock",
    "Timestamped",
    "UTCDateTime",
    "WorkItem",
]
