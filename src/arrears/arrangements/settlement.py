"""What the ledger waives when a plan with waivers (a settlement) is kept. Pure: no database here.

A plan's waivers are fixed per account and component when it is agreed (`service.create_arrangement`).
By the time the plan is kept the payments have been allocated by the ledger's own order (CN-27, CN-28),
so a component the plan meant to waive may already be paid down. The waiver is then posted:

1. per account and component, the agreed amount, as far as the component's balance allows;
2. what step 1 could not place moves to the other components the plan waives (in the policy's waiver
   order), first on the same account, then on the plan's other accounts: never more in total than the
   plan agreed, never on a component the plan does not waive;
3. interest and penalty interest accrued on the accounts after the plan was agreed: the agreement
   settled the debt for the agreed amount, so accrual after it is part of what is forgiven.

What is still owed after that (a cost or fee charged after the agreement) stays on the account, which
then remains open; `SettlementWaiver.residue_minor` says how much.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from arrears.enums import Component

#: Components accrual adds to (step 3).
ACCRUED = (Component.INTEREST, Component.PENALTY)


@dataclass(frozen=True, slots=True)
class SettlementWaiver:
    """The waiver to post: per account and component the agreed part and the accrual part, and what
    is left owed per account afterwards."""

    agreed: dict[int, dict[Component, int]]
    accrued: dict[int, dict[Component, int]]
    residue_minor: dict[int, int]

    @property
    def agreed_minor(self) -> int:
        """The agreed part posted (never more than the plan's total waiver)."""
        return sum(sum(by.values()) for by in self.agreed.values())

    @property
    def accrued_minor(self) -> int:
        """Accrual after the agreement that is waived with it."""
        return sum(sum(by.values()) for by in self.accrued.values())


def kept_settlement_waiver(
    planned: Mapping[int, Mapping[Component, int]],
    balances: Mapping[int, Mapping[Component, int]],
    accrued_since: Mapping[int, Mapping[Component, int]],
    order: Sequence[Component],
) -> SettlementWaiver:
    """The waiver postings of a kept plan (see the module docstring for the three steps).

    ``planned``: the agreed waiver per account and component; ``balances``: what each of the plan's accounts
    owes now per component (every account of the plan appears); ``accrued_since``: interest and penalty
    accrued on each account after the agreement; ``order``: the policy's waiver order.
    """
    accounts = sorted(balances)
    left = {a: {c: max(0, int(balances[a].get(c, 0))) for c in Component} for a in accounts}
    agreed: dict[int, dict[Component, int]] = {a: {} for a in accounts}
    waived_components = [c for c in order if any(planned.get(a, {}).get(c, 0) > 0 for a in planned)]
    waived_components += [
        c
        for c in Component
        if c not in waived_components and any(planned.get(a, {}).get(c, 0) > 0 for a in planned)
    ]

    def take(account: int, component: Component, wanted: int) -> int:
        got = min(wanted, left[account][component])
        if got > 0:
            left[account][component] -= got
            agreed[account][component] = agreed[account].get(component, 0) + got
        return got

    shortfall: dict[int, int] = {}
    for account in accounts:
        missing = 0
        for component, amount in planned.get(account, {}).items():
            if amount > 0:
                missing += amount - take(account, component, amount)
        shortfall[account] = missing
    for account in accounts:  # step 2, same account first
        for component in waived_components:
            if shortfall[account] <= 0:
                break
            shortfall[account] -= take(account, component, shortfall[account])
    rest = sum(shortfall.values())
    for account in accounts:  # step 2, then the plan's other accounts
        for component in waived_components:
            if rest <= 0:
                break
            rest -= take(account, component, rest)
    accrued: dict[int, dict[Component, int]] = {a: {} for a in accounts}
    for account in accounts:  # step 3
        for component in ACCRUED:
            got = min(max(0, int(accrued_since.get(account, {}).get(component, 0))), left[account][component])
            if got > 0:
                left[account][component] -= got
                accrued[account][component] = got
    return SettlementWaiver(
        agreed={a: by for a, by in agreed.items() if by},
        accrued={a: by for a, by in accrued.items() if by},
        residue_minor={a: sum(left[a].values()) for a in accounts},
    )
