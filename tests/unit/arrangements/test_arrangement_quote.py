from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from arrears.arrangements.policy import (
    ArrangementPolicy,
    DiscountBand,
    load_policy,
    parse_policy,
    policy_from_mapping,
)
from arrears.arrangements.quote import (
    Balances,
    ExtensionRequest,
    InstalmentRequest,
    LumpSumRequest,
    PaymentInKindRequest,
    SettlementRequest,
    allocate_waiver,
    needs_approval,
    quote,
)
from arrears.arrangements.schemas import ArrangementKind, Frequency
from arrears.enums import Component
from arrears.errors import ConfigurationError, ValidationFailed

AS_OF = date(2025, 6, 1)
C = Component


def balances(dpd: int = 120, **parts: int) -> Balances:
    by = {C.PRINCIPAL: 1_000_000, C.INTEREST: 150_000, C.PENALTY: 50_000, C.FEES: 10_000, C.COSTS: 0}
    by.update({C(k): v for k, v in parts.items()})
    return Balances("CNY", by, AS_OF - timedelta(days=dpd))


def test_default_policy_loads_from_package_data() -> None:
    policy = load_policy()
    assert policy.currency == "CNY"
    assert policy.waiver_order[0] is C.PENALTY and policy.waiver_order[-1] is C.PRINCIPAL
    assert ArrangementKind.PAYMENT_IN_KIND in policy.approval.kinds


def test_a_broken_policy_file_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        parse_policy('name = "x"\nmax_instalments = "many"')
    with pytest.raises(ConfigurationError):
        parse_policy("name = [")


def test_instalments_within_policy_need_no_approval() -> None:
    q = quote(InstalmentRequest(count=6, first_on=date(2025, 6, 15)), balances(), load_policy(), AS_OF)
    assert q.within_policy and not q.requires_approval
    assert q.payable_minor == q.balance_minor == 1_210_000
    assert sum(line.amount_minor for line in q.schedule) == q.payable_minor
    assert q.term_months == 6 and q.instalment_count == 6


def test_quote_names_each_exceeded_limit_in_chinese_and_english() -> None:
    q = quote(InstalmentRequest(count=30, first_on=date(2025, 6, 15)), balances(), load_policy(), AS_OF)
    codes = {f.code for f in q.limits_exceeded}
    assert codes == {"too_many_instalments", "term_too_long"}
    many = next(f for f in q.limits_exceeded if f.code == "too_many_instalments")
    assert many.limit == 24 and many.actual == 30
    assert "30" in many.message_zh and "分期" in many.message_zh
    assert "30 instalments" in many.message_en
    assert not q.within_policy and q.requires_approval
    assert "outside_policy" in {r.code for r in q.approval_reasons}


def test_instalment_below_minimum_is_outside_policy() -> None:
    small = Balances("CNY", {C.PRINCIPAL: 50_000}, AS_OF)
    q = quote(InstalmentRequest(count=10, first_on=AS_OF), small, load_policy(), AS_OF)
    assert [f.code for f in q.limits_exceeded] == ["instalment_below_minimum"]


def test_settlement_amount_is_waived_penalty_and_interest_before_principal() -> None:
    b = balances()
    q = quote(SettlementRequest(settle_minor=1_000_000, first_on=AS_OF), b, load_policy(), AS_OF)
    assert q.waiver_by_component[C.PENALTY] == 50_000
    assert q.waiver_by_component[C.FEES] == 10_000
    assert q.waiver_by_component[C.INTEREST] == 150_000
    assert q.waiver_by_component[C.PRINCIPAL] == 0
    assert q.waived_minor == 210_000 and q.payable_minor == 1_000_000
    # 210,000 / 1,210,000 = 17.36% within the 90-179 DPD band's 20%
    assert q.within_policy and q.discount_bps == 1736
    assert not q.requires_approval


def test_settlement_above_the_dpd_band_needs_approval_with_the_limit() -> None:
    q = quote(SettlementRequest(settle_minor=900_000, first_on=AS_OF), balances(dpd=30), load_policy(), AS_OF)
    found = {f.code: f for f in q.limits_exceeded}
    assert found["discount_above_band"].limit == 1000  # 0-89 DPD: 10%
    assert "10%" in found["discount_above_band"].message_zh
    assert q.requires_approval and needs_approval(q, load_policy())


def test_waiving_a_component_the_policy_protects_is_outside_policy() -> None:
    q = quote(
        SettlementRequest(waivers={C.COSTS: 1}, first_on=AS_OF),
        balances(costs=5_000),
        load_policy(),
        AS_OF,
    )
    finding = next(f for f in q.limits_exceeded if f.code == "component_waiver_above_limit")
    assert finding.component is C.COSTS and finding.limit == 0
    assert "实现债权的费用" in finding.message_zh


def test_explicit_waiver_above_the_component_balance_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        quote(
            SettlementRequest(waivers={C.PENALTY: 50_001}, first_on=AS_OF), balances(), load_policy(), AS_OF
        )


def test_settlement_in_more_payments_than_policy_allows() -> None:
    q = quote(
        SettlementRequest(settle_minor=1_100_000, payments=4, first_on=AS_OF),
        balances(),
        load_policy(),
        AS_OF,
    )
    assert "too_many_settlement_payments" in {f.code for f in q.limits_exceeded}


def test_payment_in_kind_always_needs_approval_even_if_the_policy_omits_it() -> None:
    data = load_policy().model_dump(mode="json")
    data["approval"]["kinds"] = []
    policy = policy_from_mapping(data)
    q = quote(
        PaymentInKindRequest(asset_description="2019 sedan", agreed_value_minor=1_210_000, transfer_on=AS_OF),
        balances(),
        policy,
        AS_OF,
    )
    assert q.within_policy and q.requires_approval
    assert [r.code for r in q.approval_reasons] == ["approval_kind"]
    assert "以物抵债" in q.approval_reasons[0].message_zh
    assert q.asset_value_minor == 1_210_000


def test_payment_in_kind_shortfall_stays_due_unless_waived() -> None:
    req = PaymentInKindRequest(asset_description="equipment", agreed_value_minor=1_000_000, transfer_on=AS_OF)
    assert quote(req, balances(), load_policy(), AS_OF).remaining_minor == 210_000
    waived = quote(req.model_copy(update={"waive_shortfall": True}), balances(), load_policy(), AS_OF)
    assert waived.remaining_minor == 0 and waived.waived_minor == 210_000


def test_extension_pausing_accrual_needs_approval() -> None:
    policy = load_policy()
    paused = quote(
        ExtensionRequest(new_due_on=date(2025, 7, 1), accrual_paused=True), balances(), policy, AS_OF
    )
    running = quote(ExtensionRequest(new_due_on=date(2025, 7, 1)), balances(), policy, AS_OF)
    assert paused.extension_days == 30
    assert [r.code for r in paused.approval_reasons] == ["approval_accrual_pause"]
    assert not running.requires_approval


def test_extension_beyond_the_maximum_is_outside_policy() -> None:
    q = quote(ExtensionRequest(new_due_on=AS_OF + timedelta(days=91)), balances(), load_policy(), AS_OF)
    assert [f.code for f in q.limits_exceeded] == ["extension_too_long"]


def test_lump_sum_in_the_past_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        quote(LumpSumRequest(pay_on=AS_OF - timedelta(days=1)), balances(), load_policy(), AS_OF)


def test_policy_in_another_currency_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        quote(LumpSumRequest(pay_on=AS_OF), Balances("USD", {C.PRINCIPAL: 100}), load_policy(), AS_OF)


# --- property: a settlement never waives more than policy allows without approval ----------------------


@st.composite
def policies(draw: st.DrawFn) -> ArrangementPolicy:
    base = load_policy().model_dump()
    bands = []
    for _ in range(draw(st.integers(0, 4))):
        lo = draw(st.integers(0, 400))
        bal_lo = draw(st.integers(0, 2_000_000))
        bands.append(
            DiscountBand(
                dpd_min=lo,
                dpd_max=draw(st.one_of(st.none(), st.integers(lo, 800))),
                balance_min_minor=bal_lo,
                balance_max_minor=draw(st.one_of(st.none(), st.integers(bal_lo, 4_000_000))),
                max_discount_bps=draw(st.integers(0, 10_000)),
            )
        )
    caps = {c: draw(st.integers(0, 10_000)) for c in draw(st.sets(st.sampled_from(Component)))}
    base.update(
        discount_bands=tuple(bands),
        component_waiver_bps=caps,
        waiver_order=tuple(draw(st.permutations(list(Component)))),
    )
    base["approval"].update(
        discount_bps_over=draw(st.one_of(st.none(), st.integers(0, 10_000))),
        waiver_minor_over=draw(st.one_of(st.none(), st.integers(0, 3_000_000))),
    )
    return ArrangementPolicy.model_validate(base)


def _band_max(policy: ArrangementPolicy, dpd: int, balance: int) -> int:
    for band in policy.discount_bands:
        in_dpd = band.dpd_min <= dpd and (band.dpd_max is None or dpd <= band.dpd_max)
        in_bal = band.balance_min_minor <= balance and (
            band.balance_max_minor is None or balance < band.balance_max_minor
        )
        if in_dpd and in_bal:
            return band.max_discount_bps
    return 0


@given(
    policy=policies(),
    parts=st.dictionaries(st.sampled_from(Component), st.integers(0, 1_000_000), min_size=1),
    dpd=st.integers(0, 900),
    share=st.integers(0, 9_999),
    explicit=st.booleans(),
    data=st.data(),
)
def test_settlement_never_waives_beyond_policy_without_needing_approval(
    policy: ArrangementPolicy,
    parts: dict[Component, int],
    dpd: int,
    share: int,
    explicit: bool,
    data: st.DataObject,
) -> None:
    b = Balances("CNY", parts, AS_OF - timedelta(days=dpd))
    total = b.total_minor
    if total < 2:
        return
    if explicit:
        waivers = {c: data.draw(st.integers(0, v)) for c, v in parts.items()}
        if sum(waivers.values()) >= total:
            return
        request = SettlementRequest(waivers=waivers, first_on=AS_OF)
    else:
        settle = max(1, total - total * share // 10_000)
        request = SettlementRequest(settle_minor=settle, first_on=AS_OF)
    q = quote(request, b, policy, AS_OF)
    assert q.waived_minor + q.payable_minor == total
    assert q.requires_approval == needs_approval(q, policy)
    if not needs_approval(q, policy):
        assert q.waived_minor * 10_000 <= total * _band_max(policy, dpd, total)
        for c, waived in q.waiver_by_component.items():
            assert waived * 10_000 <= parts.get(c, 0) * policy.component_waiver_bps.get(c, 0)
        if policy.approval.waiver_minor_over is not None:
            assert q.waived_minor <= policy.approval.waiver_minor_over


@given(
    parts=st.dictionaries(st.sampled_from(Component), st.integers(0, 1_000_000), min_size=1),
    data=st.data(),
)
def test_allocated_waiver_fills_components_in_order_and_sums_exactly(
    parts: dict[Component, int], data: st.DataObject
) -> None:
    b = Balances("CNY", parts)
    amount = data.draw(st.integers(0, b.total_minor))
    policy = load_policy()
    waived = allocate_waiver(amount, b, policy)
    assert sum(waived.values()) == amount
    assert all(0 <= waived[c] <= parts.get(c, 0) for c in Component)


def test_frequency_default_for_settlement_is_monthly() -> None:
    q = quote(
        SettlementRequest(settle_minor=1_100_000, payments=2, first_on=date(2025, 6, 30)),
        balances(),
        load_policy(),
        AS_OF,
    )
    assert [line.due_on for line in q.schedule] == [date(2025, 6, 30), date(2025, 7, 30)]
    assert SettlementRequest(settle_minor=1, first_on=AS_OF).frequency is Frequency.MONTHLY
