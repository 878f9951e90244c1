"""Postings: the append-only ledger lines from which every balance is derived.

Sign convention
---------------
``amount_minor`` is the signed change a posting makes to what the debtor owes, in the account's currency:

* positive: the debt grows (charge, accrual; a reversal of a payment, waiver or write-off);
* negative: the debt shrinks (payment, waiver, write-off; a reversal of a charge or accrual).

A posting either sits on a balance component (principal, interest, penalty, fees, costs) or, when its
``component`` is ``None``, on the account's **credit balance**: money held for the debtor (an overpayment).
A credit posting with a negative amount creates credit (the creditor owes the debtor); a positive one uses
it up (applied to a debt or refunded). The credit bucket is therefore never positive; `credit_balance`
reports it as a non-negative amount.

Invariants (tested in ``tests/unit/ledger``)
-------------------------------------------
1. A balance is the sum of the postings (DESIGN invariant 2): `balances` is that sum and nothing else.
2. Postings are never changed or deleted. A mistake is undone by a reversal: a new posting with the
   opposite amount, the same account and component, naming the undone posting in ``reverses_posting_id``.
3. A posting is reversed at most once, and a reversal is never itself reversed (post the entry again).
4. No component balance is ever negative and the credit balance never turns into a debt: `reverse` and
   `check_ledger` refuse any set of postings that would break this (reverse a payment before the charge it
   paid).
5. Each kind has a fixed sign: charges and accruals are positive, payments, waivers and write-offs are
   negative, reversals carry the negation of the posting they undo, credit postings sit on the credit bucket.
   Adjustments (a re-imported balance that differs from the ledger's) take either sign.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum

from arrears.enums import Component
from arrears.errors import Conflict, ValidationFailed


class PostingKind(StrEnum):
    """What a posting records. The stored value is the string."""

    CHARGE = "charge"  # a principal, fee or cost put on the account (also the opening balances of an import)
    ACCRUAL = "accrual"  # a day's interest or penalty interest
    PAYMENT = "payment"  # part of a received payment applied to a component
    WAIVER = "waiver"  # a discount or waiver granted (settlement, arrangement)
    WRITE_OFF = "write_off"  # an uncollectable amount taken off the books
    REVERSAL = "reversal"  # undoes one named posting
    CREDIT = "credit"  # moves money into (negative) or out of (positive) the account's credit balance
    ADJUSTMENT = "adjustment"  # a balance corrected by the creditor's file (a re-import), either sign


_POSITIVE_KINDS = frozenset({PostingKind.CHARGE, PostingKind.ACCRUAL})
_NEGATIVE_KINDS = frozenset({PostingKind.PAYMENT, PostingKind.WAIVER, PostingKind.WRITE_OFF})

#: Components in a fixed order, for stable output.
COMPONENTS: tuple[Component, ...] = tuple(Component)


@dataclass(frozen=True, slots=True)
class Posting:
    """One ledger line.

    ``id`` is the stored identity (``None`` until stored); a reversal names the undone posting by it.
    ``component`` ``None`` means the account's credit balance. ``rule_id`` says which rule placed the amount
    (e.g. ``"CN-27:due_first;CN-28"`` for a payment split, ``"CN-30"`` for an accrual cut by the cap).
    ``payment_ref`` ties together the postings of one received payment.
    """

    account_id: int
    component: Component | None
    amount_minor: int
    kind: PostingKind
    effective_date: date
    id: int | None = None
    reverses_posting_id: int | None = None
    rule_id: str | None = None
    payment_ref: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.amount_minor, int) or isinstance(self.amount_minor, bool):
            raise TypeError("Posting.amount_minor must be an int of minor units")
        kind = self.kind
        if kind is PostingKind.CREDIT:
            if self.component is not None:
                raise ValidationFailed("a credit posting sits on the credit balance", code="bad_posting")
        elif kind is not PostingKind.REVERSAL and self.component is None:
            raise ValidationFailed(f"a {kind} posting needs a component", code="bad_posting")
        if self.amount_minor == 0:
            raise ValidationFailed("a posting of zero records nothing", code="bad_posting")
        if kind in _POSITIVE_KINDS and self.amount_minor < 0:
            raise ValidationFailed(f"a {kind} posting is positive", code="bad_posting")
        if kind in _NEGATIVE_KINDS and self.amount_minor > 0:
            raise ValidationFailed(f"a {kind} posting is negative", code="bad_posting")
        if (kind is PostingKind.REVERSAL) != (self.reverses_posting_id is not None):
            raise ValidationFailed(
                "a reversal, and only a reversal, names the posting it undoes", code="bad_posting"
            )


@dataclass(frozen=True, slots=True)
class AccountLedger:
    """What the postings of one account add up to."""

    account_id: int
    balances: Mapping[Component, int] = field(default_factory=dict)
    credit_minor: int = 0  # money held for the debtor, >= 0

    @property
    def total_minor(self) -> int:
        """Everything owed on the account (before any credit balance)."""
        return sum(self.balances.values())


def balances(postings: Iterable[Posting]) -> dict[Component, int]:
    """Balance per component of one account: the sum of its postings (credit postings excluded).

    Every component appears in the result, zero when nothing was posted. Postings of more than one account
    are refused; use `balances_by_account` for a mixed list.
    """
    totals = dict.fromkeys(COMPONENTS, 0)
    account: int | None = None
    for p in postings:
        if account is None:
            account = p.account_id
        elif p.account_id != account:
            raise ValidationFailed("postings of several accounts; use balances_by_account", code="mixed")
        if p.component is not None:
            totals[p.component] += p.amount_minor
    return totals


def credit_balance(postings: Iterable[Posting]) -> int:
    """Money held for the debtor (overpayments not yet used), as a non-negative amount."""
    return -sum(p.amount_minor for p in postings if p.component is None)


def balances_by_account(postings: Iterable[Posting]) -> dict[int, AccountLedger]:
    """Balances and credit balance of every account that has postings."""
    per_account: dict[int, list[Posting]] = defaultdict(list)
    for p in postings:
        per_account[p.account_id].append(p)
    return {
        account_id: AccountLedger(account_id, balances(items), credit_balance(items))
        for account_id, items in sorted(per_account.items())
    }


def check_ledger(postings: Sequence[Posting]) -> None:
    """Raise `Conflict` unless the postings keep the ledger's invariants.

    Checks: no component of any account is negative, no credit balance has turned into a debt, every
    reversal names a posting of the same account and component with the opposite amount, nothing is
    reversed twice and no reversal is reversed.
    """
    by_id = {p.id: p for p in postings if p.id is not None}
    reversed_ids: set[int] = set()
    for p in postings:
        if p.reverses_posting_id is None:
            continue
        target = by_id.get(p.reverses_posting_id)
        if target is None:
            raise Conflict(f"reversal of unknown posting {p.reverses_posting_id}", code="reversal_unknown")
        if target.kind is PostingKind.REVERSAL:
            raise Conflict("a reversal is not reversed; post the entry again", code="reversal_of_reversal")
        if (target.account_id, target.component, -target.amount_minor) != (
            p.account_id,
            p.component,
            p.amount_minor,
        ):
            raise Conflict(f"reversal does not mirror posting {target.id}", code="reversal_mismatch")
        if p.reverses_posting_id in reversed_ids:
            raise Conflict(f"posting {p.reverses_posting_id} is already reversed", code="already_reversed")
        reversed_ids.add(p.reverses_posting_id)
    for ledger in balances_by_account(postings).values():
        negative = [c for c, v in ledger.balances.items() if v < 0]
        if negative:
            raise Conflict(
                f"account {ledger.account_id}: {', '.join(negative)} would be negative "
                f"(账户 {ledger.account_id} 的余额将为负数); reverse the payment first",
                code="negative_balance",
            )
        if ledger.credit_minor < 0:
            raise Conflict(
                f"account {ledger.account_id}: credit balance already used (溢缴款已使用)",
                code="credit_used",
            )


def reverse(
    targets: Posting | Sequence[Posting],
    *,
    ledger: Sequence[Posting],
    effective_date: date,
    rule_id: str | None = None,
) -> list[Posting]:
    """Reversal postings that undo ``targets`` (stored postings of ``ledger``), one per target.

    Each reversal has the opposite amount, the same account and component, the same ``payment_ref`` and
    names its target. The result is checked against the whole ledger (`check_ledger`), so a reversal that
    would make a balance negative (a charge already paid), reverse something twice or reverse a reversal
    raises `Conflict` and returns nothing.
    """
    items = [targets] if isinstance(targets, Posting) else list(targets)
    known = {p.id for p in ledger if p.id is not None}
    out: list[Posting] = []
    for target in items:
        if target.id is None or target.id not in known:
            raise Conflict("only a stored posting of this ledger can be reversed", code="reversal_unknown")
        out.append(
            Posting(
                account_id=target.account_id,
                component=target.component,
                amount_minor=-target.amount_minor,
                kind=PostingKind.REVERSAL,
                effective_date=effective_date,
                reverses_posting_id=target.id,
                rule_id=rule_id,
                payment_ref=target.payment_ref,
            )
        )
    check_ledger([*ledger, *out])
    return out


def reverse_payment(ledger: Sequence[Posting], payment_ref: str, *, effective_date: date) -> list[Posting]:
    """Reversals of every not yet reversed posting of one received payment (its splits and its credit)."""
    reversed_ids = {p.reverses_posting_id for p in ledger if p.reverses_posting_id is not None}
    targets = [
        p
        for p in ledger
        if p.payment_ref == payment_ref and p.kind is not PostingKind.REVERSAL and p.id not in reversed_ids
    ]
    if not targets:
        raise Conflict(f"no open postings for payment {payment_ref!r}", code="payment_unknown")
    return reverse(targets, ledger=ledger, effective_date=effective_date)


def with_ids(postings: Iterable[Posting], start: int) -> list[Posting]:
    """The postings numbered from ``start`` (what storing them does; for tests and dry runs)."""
    return [replace(p, id=start + i) for i, p in enumerate(postings)]
