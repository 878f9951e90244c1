"""The product's shared vocabulary (GLOSSARY.md), as string enums.

Pure: no database imports, so rule modules and models can both use them. Values are the stored strings.
"""

from __future__ import annotations

from enum import StrEnum


class DebtorKind(StrEnum):
    PERSON = "person"
    COMPANY = "company"


class IdType(StrEnum):
    RESIDENT_ID = "resident_id"  # PRC resident identity card, 18 digits
    USCC = "uscc"  # unified social credit code of a company
    PASSPORT = "passport"
    OTHER = "other"


class Product(StrEnum):
    CREDIT_CARD = "credit_card"
    CONSUMER_LOAN = "consumer_loan"
    INSTALMENT_LOAN = "instalment_loan"
    BNPL = "bnpl"
    INVOICE = "invoice"
    OTHER = "other"


class Component(StrEnum):
    """Balance components, in the default CN-28 allocation order's vocabulary."""

    COSTS = "costs"
    INTEREST = "interest"
    PENALTY = "penalty"
    FEES = "fees"
    PRINCIPAL = "principal"


class AccountStatus(StrEnum):
    ACTIVE = "active"
    SETTLED = "settled"
    WRITTEN_OFF = "written_off"
    CLOSED = "closed"


class CaseStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class ContactKind(StrEnum):
    MOBILE = "mobile"
    LANDLINE = "landline"
    EMAIL = "email"
    ADDRESS = "address"
    OTHER = "other"


class OwnerRelation(StrEnum):
    SELF = "self"
    SPOUSE = "spouse"
    RELATIVE = "relative"
    EMERGENCY_CONTACT = "emergency_contact"
    EMPLOYER = "employer"
    GUARANTOR = "guarantor"
    OTHER = "other"


class FlagKind(StrEnum):
    """Flags that stop collection contact until an authorised user clears them."""

    DISPUTE = "dispute"
    CEASE = "cease"
    DECEASED = "deceased"
    BANKRUPTCY = "bankruptcy"
    COMPLAINT = "complaint"
    LEGAL_HOLD = "legal_hold"


class Channel(StrEnum):
    CALL = "call"
    SMS = "sms"
    EMAIL = "email"
    LETTER = "letter"
    VISIT = "visit"
    LAWYER_LETTER = "lawyer_letter"
    OTHER = "other"


class Role(StrEnum):
    COLLECTOR = "collector"
    SUPERVISOR = "supervisor"
    COMPLIANCE = "compliance"
    ADMIN = "admin"
    AGENCY = "agency"
    READ_ONLY = "read_only"
