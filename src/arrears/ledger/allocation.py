"""Allocation: how one payment is split across a debtor's accounts and their components.

The order is data (`AllocationPolicy`, loaded from ``ledger/data/allocation/<name>.toml``), chosen per
portfolio by name. The default ``cn-default`` policy is:

* across accounts (CN-27, Civil Code art. 560): the debtor's designation if given; else due debts first,
  then the least secured, then the most burdensome, then the earliest due; accounts equal on every
  criterion share pro rata;
* within an account (CN-28, art. 561): costs, then interest and penalty interest, then fees, then principal.

Whatever is left after every account is paid in full becomes a credit balance (never lost). Every split
carries the rule that placed it, e.g. ``"CN-27:due_first;CN-28"``: the account was reached because it was
due and the others were not, and within it CN-28 chose the component.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from importlib import resources
from typing import Any

from arrears.enums import Component
from arrears.errors import ConfigurationError, NotFound, ValidationFailed
from arrears.ledger.postings import Posting, PostingKind

DEFAULT_POLICY = "cn-default"
OVERPAYMENT_RULE = "overpayment"
DESIGNATION = "designation"
PRO_RATA = "pro_rata"
REMAINING = "remaining"  # the only account, or the only group, left after the designated ones


class AccountCriterion(StrEnum):
    """CN-27 criteria that order accounts; each names its step in a split's rule id."""

    DUE_FIRST = "due_first"  # due debts before debts not yet due
    LEAST_SECURED = "least_secured"  # unsecured before secured
    MOST_BURDENSOME = "most_burdensome"  # the highest annual rate (interest or penalty) first
    EARLIEST_DUE = "earliest_due"  # the earliest unpaid due date first


@dataclass(frozen=True, slots=True)
class AccountBalance:
    """What one account owes at the moment of the payment, with what CN-27 needs to order it.

    ``due_date`` is the earliest unpaid due date (``None``: nothing is due yet). Burden is the higher of
    the two annual rates, in parts per million (24% = 240000).
    """

    account_id: int
    balances: Mapping[Component, int]
    due_date: date | None = None
    is_secured: bool = False
    interest_rate_annual_ppm: int = 0
    penalty_rate_annual_ppm: int = 0
    currency: str = "CNY"

    @property
    def outstanding_minor(self) -> int:
        """Everything owed on the account."""
        return sum(v for v in self.balances.values() if v > 0)

    @property
    def burden_ppm(self) -> int:
        """How burdensome the debt is: the highest annual rate it can carry."""
        return max(self.interest_rate_annual_ppm, self.penalty_rate_annual_ppm)


@dataclass(frozen=True, slots=True)
class AllocationPolicy:
    """An ordered allocation rule set (see the module docstring and the TOML files)."""

    name: str
    across_rule_id: str
    honour_designation: bool
    account_order: tuple[AccountCriterion, ...]
    component_rule_id: str
    component_steps: tuple[tuple[Component, ...], ...]
    description: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AllocationSplit:
    """One part of a payment applied to one component of one account, with the rules that placed it."""

    account_id: int
    component: Component
    amount_minor: int  # > 0: the amount applied
    account_rule: str | None  # e.g. "CN-27:due_first"; None when only one account was in play
    component_rule: str  # e.g. "CN-28" or "contract:principal_first"

    @property
    def rule_id(self) -> str:
        """Both rules, across then within, joined by ``;``."""
        return (
            self.component_rule if self.account_rule is None else f"{self.account_rule};{self.component_rule}"
        )


@dataclass(frozen=True, slots=True)
class AllocationResult:
    """How a payment was split; ``allocated_minor + credit_minor == payment_minor`` always."""

    payment_minor: int
    splits: tuple[AllocationSplit, ...]
    credit_minor: int
    credit_account_id: int | None
    policy: str

    @property
    def allocated_minor(self) -> int:
        """The part of the payment applied to debts."""
        return sum(s.amount_minor for s in self.splits)

    def by_account(self) -> dict[int, dict[Component, int]]:
        """Applied amounts per account and component."""
        out: dict[int, dict[Component, int]] = {}
        for s in self.splits:
            comp = out.setdefault(s.account_id, {})
            comp[s.component] = comp.get(s.component, 0) + s.amount_minor
        return out

    def to_postings(
        self, *, payment_ref: str, effective_date: date, credit_account_id: int | None = None
    ) -> list[Posting]:
        """Payment postings (negative, one per split) and, for an overpayment, a credit posting.

        The credit goes to ``credit_account_id`` if given, else to the account the policy reached first.
        """
        out = [
            Posting(
                account_id=s.account_id,
                component=s.component,
                amount_minor=-s.amount_minor,
                kind=PostingKind.PAYMENT,
                effective_date=effective_date,
                rule_id=s.rule_id,
                payment_ref=payment_ref,
            )
            for s in self.splits
        ]
        if self.credit_minor:
            target = credit_account_id if credit_account_id is not None else self.credit_account_id
            if target is None:
                raise ValidationFailed("an overpayment needs an account to hold it", code="no_credit_account")
            out.append(
                Posting(
                    account_id=target,
                    component=None,
                    amount_minor=-self.credit_minor,
                    kind=PostingKind.CREDIT,
                    effective_date=effective_date,
                    rule_id=OVERPAYMENT_RULE,
                    payment_ref=payment_ref,
                )
            )
        return out


def pro_rata(total_minor: int, weights: Sequence[int]) -> list[int]:
    """Split ``total_minor`` in proportion to ``weights`` by the largest-remainder method.

    The parts sum to the total exactly; each is the floor of its exact share, plus one minor unit for the
    largest fractional remainders (earlier positions win ties). When the total does not exceed the sum of
    the weights, no part exceeds its weight.
    """
    if total_minor < 0 or any(w < 0 for w in weights):
        raise ValueError("pro_rata needs a non-negative total and weights")
    weight_sum = sum(weights)
    if weight_sum == 0:
        if total_minor:
            raise ValueError("cannot share an amount over zero weights")
        return [0] * len(weights)
    floors_and_rems = [divmod(total_minor * w, weight_sum) for w in weights]
    parts = [q for q, _ in floors_and_rems]
    left = total_minor - sum(parts)
    by_remainder = sorted(range(len(weights)), key=lambda i: (-floors_and_rems[i][1], i))
    for i in by_remainder[:left]:
        parts[i] += 1
    return parts


def _criterion_key(account: AccountBalance, criterion: AccountCriterion, as_of: date) -> int:
    """Smaller sorts first."""
    if criterion is AccountCriterion.DUE_FIRST:
        return 0 if account.due_date is not None and account.due_date <= as_of else 1
    if criterion is AccountCriterion.LEAST_SECURED:
        return 1 if account.is_secured else 0
    if criterion is AccountCriterion.MOST_BURDENSOME:
        return -account.burden_ppm
    # EARLIEST_DUE: accounts with nothing due sort last
    return account.due_date.toordinal() if account.due_date is not None else date.max.toordinal() + 1


def _within(
    account: AccountBalance, amount_minor: int, policy: AllocationPolicy, account_rule: str | None
) -> list[AllocationSplit]:
    """Apply ``amount_minor`` (at most the account's outstanding) to its components, step by step."""
    splits: list[AllocationSplit] = []
    left = amount_minor
    for step in policy.component_steps:
        if left == 0:
            break
        owed = [max(account.balances.get(c, 0), 0) for c in step]
        step_total = sum(owed)
        if step_total == 0:
            continue
        parts = owed if left >= step_total else pro_rata(left, owed)
        for component, part in zip(step, parts, strict=True):
            if part:
                splits.append(
                    AllocationSplit(
                        account.account_id, component, part, account_rule, policy.component_rule_id
                    )
                )
        left -= sum(parts)
    return splits


def allocate(
    payment_minor: int,
    accounts: Sequence[AccountBalance],
    order: AllocationPolicy,
    designation: Sequence[int] | None = None,
    *,
    as_of: date,
) -> AllocationResult:
    """Split a payment over a debtor's accounts by ``order`` (CN-27 across accounts, CN-28 within one).

    ``designation`` is the debtor's list of account ids to pay first, in that order (honoured when the
    policy says so, which CN-27 requires). Accounts not designated follow the policy's criteria; accounts
    equal on all of them share pro rata. What no account can take becomes ``credit_minor``, held on the
    first account the policy reached.
    """
    if payment_minor <= 0:
        raise ValidationFailed("a payment is a positive amount", code="bad_payment")
    if len({a.account_id for a in accounts}) != len(accounts):
        raise ValidationFailed("an account appears twice", code="duplicate_account")
    if len({a.currency for a in accounts}) > 1:
        raise ValidationFailed("one payment cannot pay debts in several currencies", code="mixed_currency")
    by_id = {a.account_id: a for a in accounts}
    rule = order.across_rule_id

    groups: list[tuple[list[AccountBalance], str]] = []
    designated: list[int] = []
    if designation and order.honour_designation:
        for account_id in designation:
            if account_id not in by_id:
                raise NotFound(
                    f"designated account {account_id} is not the debtor's", code="designation_unknown"
                )
            if account_id not in designated:
                designated.append(account_id)
        groups.extend(([by_id[i]], f"{rule}:{DESIGNATION}") for i in designated)

    rest = [a for a in accounts if a.account_id not in designated]
    keyed = sorted(
        ((tuple(_criterion_key(a, c, as_of) for c in order.account_order), a) for a in rest),
        key=lambda ka: (ka[0], ka[1].account_id),  # account id only makes the order reproducible
    )
    rest_groups: list[tuple[tuple[int, ...], list[AccountBalance]]] = []
    for key, account in keyed:
        if rest_groups and rest_groups[-1][0] == key:
            rest_groups[-1][1].append(account)
        else:
            rest_groups.append((key, [account]))

    def deciding(a: tuple[int, ...], b: tuple[int, ...]) -> str:
        index = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
        return str(order.account_order[index])

    for i, (key, members) in enumerate(rest_groups):
        if len(rest_groups) == 1:
            step = PRO_RATA if len(members) > 1 else REMAINING
        else:
            neighbour = rest_groups[i + 1][0] if i + 1 < len(rest_groups) else rest_groups[i - 1][0]
            step = deciding(key, neighbour)
        groups.append((members, f"{rule}:{step}"))

    single_account = len(accounts) == 1
    splits: list[AllocationSplit] = []
    left = payment_minor
    for members, label in groups:
        if left == 0:
            break
        owed = [a.outstanding_minor for a in members]
        total = sum(owed)
        if total == 0:
            continue
        if left >= total:
            parts = owed
        else:
            parts = pro_rata(left, owed)
            if len(members) > 1:
                label = f"{rule}:{PRO_RATA}"
        for account, part in zip(members, parts, strict=True):
            if part:
                splits.extend(_within(account, part, order, None if single_account else label))
        left -= sum(parts)

    first = groups[0][0][0].account_id if groups else None
    return AllocationResult(payment_minor, tuple(splits), left, first, order.name)


# -- policies as data -------------------------------------------------------------------------------------


def parse_policy(data: Mapping[str, Any]) -> AllocationPolicy:
    """Build a policy from its TOML table, refusing unknown criteria and incomplete component orders."""
    try:
        across = data["across_accounts"]
        within = data["within_account"]
        criteria = tuple(AccountCriterion(c) for c in across["order"])
        steps = tuple(tuple(Component(c) for c in step) for step in within["order"])
        policy = AllocationPolicy(
            name=str(data["name"]),
            across_rule_id=str(across["rule_id"]),
            honour_designation=bool(across.get("honour_designation", True)),
            account_order=criteria,
            component_rule_id=str(within["rule_id"]),
            component_steps=steps,
            description={
                "zh_CN": str(data.get("description_zh", "")),
                "en": str(data.get("description_en", "")),
            },
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise ConfigurationError(f"bad allocation policy: {exc}", code="bad_allocation_policy") from exc
    listed = [c for step in steps for c in step]
    if sorted(listed) != sorted(Component) or len(set(criteria)) != len(criteria):
        raise ConfigurationError(
            f"policy {policy.name!r} must list every component once and each criterion at most once",
            code="bad_allocation_policy",
        )
    return policy


def _policy_dir() -> Any:
    return resources.files("arrears.ledger").joinpath("data", "allocation")


def policy_names() -> list[str]:
    """Names of the shipped policies."""
    return sorted(p.name.removesuffix(".toml") for p in _policy_dir().iterdir() if p.name.endswith(".toml"))


def load_policy(name: str | None = None) -> AllocationPolicy:
    """The shipped policy called ``name`` (a portfolio's setting); ``None`` means the default CN policy."""
    name = name or DEFAULT_POLICY
    if name not in policy_names():
        raise NotFound(
            f"unknown allocation policy {name!r} (未知的冲抵顺序)", code="allocation_policy_unknown"
        )
    text = _policy_dir().joinpath(f"{name}.toml").read_text(encoding="utf-8")
    return parse_policy(tomllib.loads(text))
