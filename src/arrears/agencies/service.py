"""Agencies and placements: only listed, active agencies get cases (CN-7); cases are picked by a rule for a
batch placement; placements end by recall (by hand or at expiry); commission is computed on the payments
received while a case was placed.

A placement is in force from ``placed_on`` up to, not including, its end: ``recalled_on`` when recalled,
else ``expires_on``. Payments come in as a Polars frame ``account_id, received_on, amount_minor``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

import polars as pl
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import ColumnElement

from arrears.arrangements.service import PAYMENT_SCHEMA
from arrears.enums import Product
from arrears.errors import ComplianceBlocked, Conflict, NotFound, ValidationFailed
from arrears.holds.authority import APPROVING_ROLES, get_user, require_role
from arrears.models import Account, AccountFlag, Agency, Case, Debtor, Placement
from arrears.money import round_half_up

LISTED_RULE = "CN-7"
BPS = 10_000


def create_agency(
    session: Session,
    *,
    name: str,
    listed: bool,
    active: bool = True,
    commission_bps: int = 0,
    contact: str | None = None,
) -> Agency:
    """Register an agency; ``listed`` = on the institution's published partner list (CN-7)."""
    if not name.strip():
        raise ValidationFailed("机构名称不能为空 / an agency needs a name", code="agency_name_required")
    if not 0 <= commission_bps <= BPS:
        raise ValidationFailed(
            f"佣金比例须在 0..{BPS} / commission must be 0..{BPS} bps", code="bad_commission"
        )
    if session.scalar(select(Agency.id).where(Agency.name == name.strip())) is not None:
        raise Conflict(f"机构已存在：{name} / agency {name!r} already exists", code="agency_exists")
    agency = Agency(
        name=name.strip(), listed=listed, active=active, commission_bps=commission_bps, contact=contact
    )
    session.add(agency)
    session.flush()
    return agency


def update_agency(
    session: Session,
    *,
    agency_id: int,
    listed: bool | None = None,
    active: bool | None = None,
    commission_bps: int | None = None,
    login_ip_allowlist: list[str] | None = None,
) -> Agency:
    """Change an agency's listing, activity, commission or the networks its users may sign in from."""
    agency = get_agency(session, agency_id=agency_id)
    if login_ip_allowlist is not None:
        agency.login_ip_allowlist = _networks(login_ip_allowlist)
    if listed is not None:
        agency.listed = listed
    if active is not None:
        agency.active = active
    if commission_bps is not None:
        if not 0 <= commission_bps <= BPS:
            raise ValidationFailed(
                f"佣金比例须在 0..{BPS} / commission must be 0..{BPS} bps", code="bad_commission"
            )
        agency.commission_bps = commission_bps
    session.flush()
    return agency


def _networks(entries: list[str]) -> list[str]:
    """CIDR networks or single addresses, normalised; a bad entry is refused with its text."""
    out: list[str] = []
    for entry in entries:
        try:
            out.append(str(ipaddress.ip_network(entry.strip(), strict=False)))
        except ValueError:
            raise ValidationFailed(
                f"不是有效的网络地址：{entry!r} / not an IP network: {entry!r}", code="bad_network"
            ) from None
    return out


def get_agency(session: Session, *, agency_id: int) -> Agency:
    """An agency, or NotFound."""
    agency = session.get(Agency, agency_id)
    if agency is None:
        raise NotFound(f"机构不存在：{agency_id} / agency {agency_id} not found", code="agency_not_found")
    return agency


def list_agencies(session: Session) -> list[Agency]:
    """Every agency, by name."""
    return list(session.scalars(select(Agency).order_by(Agency.name)))


def require_listed(agency: Agency) -> None:
    """CN-7: refuse an agency that is not on the published partner list or not active."""
    if agency.listed and agency.active:
        return
    why_zh = "不在已公布的合作机构名单内" if not agency.listed else "已停用"
    why_en = "is not on the published list of partner agencies" if not agency.listed else "is not active"
    raise ComplianceBlocked(
        f"机构 {agency.name} {why_zh}，不得委案（{LISTED_RULE}） / agency {agency.name} {why_en}: "
        f"no cases may be placed with it ({LISTED_RULE})",
        code="agency_not_listed",
        details={
            "rule_ids": [LISTED_RULE],
            "agency_id": agency.id,
            "listed": agency.listed,
            "active": agency.active,
        },
    )


@dataclass(frozen=True, slots=True)
class PlacementRule:
    """Which cases a batch placement picks: days past due and balance ranges (inclusive), a product, and
    at most ``max_cases`` cases (largest balances first)."""

    dpd_min: int | None = None
    dpd_max: int | None = None
    balance_min_minor: int | None = None
    balance_max_minor: int | None = None
    product: Product | None = None
    max_cases: int | None = None


def _open_placement(as_of: date) -> ColumnElement[bool]:
    return and_(Placement.recalled_on.is_(None), Placement.placed_on <= as_of, Placement.expires_on > as_of)


def _case_balance() -> ColumnElement[int]:
    """A case's balance, summed over its accounts (in a query grouped by case)."""
    return func.sum(Account.balance_minor)


def select_cases(session: Session, *, portfolio_id: int, rule: PlacementRule, as_of: date) -> list[int]:
    """Case ids matching ``rule`` on ``as_of``: open, not placed now, no hold in force on any account."""
    balance = _case_balance()
    earliest_due = func.min(Account.due_date)
    held = exists().where(
        AccountFlag.case_id == Case.id,
        AccountFlag.cleared_at.is_(None),
        or_(AccountFlag.expires_on.is_(None), AccountFlag.expires_on > as_of),
    )
    placed = exists().where(Placement.case_id == Case.id, _open_placement(as_of))
    query = (
        select(Case.id)
        .join(Account, Account.case_id == Case.id)
        .where(Case.portfolio_id == portfolio_id, Case.status == "open", ~held, ~placed)
        .group_by(Case.id)
    )
    if rule.dpd_min is not None:
        query = query.having(earliest_due <= as_of - timedelta(days=rule.dpd_min))
    if rule.dpd_max is not None:
        query = query.having(earliest_due >= as_of - timedelta(days=rule.dpd_max))
    if rule.balance_min_minor is not None:
        query = query.having(balance >= rule.balance_min_minor)
    if rule.balance_max_minor is not None:
        query = query.having(balance <= rule.balance_max_minor)
    if rule.product is not None:
        other = aliased(Account)
        query = query.where(exists().where(other.case_id == Case.id, other.product == rule.product.value))
    query = query.order_by(balance.desc(), Case.id)
    if rule.max_cases is not None:
        query = query.limit(rule.max_cases)
    return list(session.scalars(query))


def place_cases(
    session: Session,
    *,
    agency_id: int,
    case_ids: Sequence[int],
    placed_on: date,
    expires_on: date,
    placed_by_id: int | None = None,
) -> list[Placement]:
    """Place cases with an agency until ``expires_on``; refused for an unlisted or inactive agency (CN-7)
    and for a case already placed."""
    agency = get_agency(session, agency_id=agency_id)
    require_listed(agency)
    if expires_on <= placed_on:
        raise ValidationFailed(
            "委案到期日须晚于委案日 / expiry must be after the placement date", code="bad_expiry"
        )
    if placed_by_id is not None:
        get_user(session, placed_by_id)
    ids = list(dict.fromkeys(case_ids))
    found = set(session.scalars(select(Case.id).where(Case.id.in_(ids))))
    if set(ids) - found:
        raise NotFound(f"案件不存在 / cases not found: {sorted(set(ids) - found)}", code="case_not_found")
    busy = list(
        session.scalars(
            select(Placement.case_id).where(Placement.case_id.in_(ids), _open_placement(placed_on))
        )
    )
    if busy:
        raise Conflict(
            f"案件已委案 / cases already placed: {sorted(busy)}",
            code="case_already_placed",
            details=sorted(busy),
        )
    rows = [
        Placement(
            case_id=cid,
            agency_id=agency.id,
            placed_on=placed_on,
            expires_on=expires_on,
            placed_by_id=placed_by_id,
        )
        for cid in ids
    ]
    session.add_all(rows)
    session.flush()
    return rows


def place_batch(
    session: Session,
    *,
    portfolio_id: int,
    agency_id: int,
    rule: PlacementRule,
    placed_on: date,
    expires_on: date,
    placed_by_id: int | None = None,
) -> list[Placement]:
    """Select cases by ``rule`` and place them with the agency (CN-7 checked before anything is chosen)."""
    require_listed(get_agency(session, agency_id=agency_id))
    case_ids = select_cases(session, portfolio_id=portfolio_id, rule=rule, as_of=placed_on)
    if not case_ids:
        return []
    return place_cases(
        session,
        agency_id=agency_id,
        case_ids=case_ids,
        placed_on=placed_on,
        expires_on=expires_on,
        placed_by_id=placed_by_id,
    )


def get_placement(session: Session, *, placement_id: int) -> Placement:
    """A placement, or NotFound."""
    placement = session.get(Placement, placement_id)
    if placement is None:
        raise NotFound(
            f"委案不存在：{placement_id} / placement {placement_id} not found", code="placement_not_found"
        )
    return placement


def recall_placement(
    session: Session, *, placement_id: int, recalled_on: date, user_id: int, reason: str
) -> Placement:
    """Take a case back from an agency by hand (supervisor or admin, with a reason); its access ends (PI-4)."""
    if not reason or not reason.strip():
        raise ValidationFailed("撤案须说明原因 / a recall needs a reason", code="reason_required")
    require_role(session, user_id=user_id, roles=APPROVING_ROLES, action="撤案 / recall a placement")
    placement = get_placement(session, placement_id=placement_id)
    if placement.recalled_on is not None:
        raise Conflict(
            f"委案已撤回：{placement_id} / placement {placement_id} is already recalled",
            code="already_recalled",
        )
    if recalled_on < placement.placed_on:
        raise ValidationFailed("撤案日不得早于委案日 / recall before placement", code="bad_recall_date")
    placement.recalled_on = recalled_on
    placement.recalled_by_id = user_id
    placement.recall_reason = reason.strip()
    session.flush()
    return placement


def recall_expired_placements(
    session: Session, *, as_of: date, portfolio_id: int | None = None
) -> list[Placement]:
    """Recall every placement whose term has ended (``expires_on <= as_of``), dated its expiry day; only
    the cases of ``portfolio_id`` when given (the daily run of one portfolio).

    Idempotent: a recalled placement is not picked again.
    """
    query = select(Placement).where(Placement.recalled_on.is_(None), Placement.expires_on <= as_of)
    if portfolio_id is not None:
        query = query.join(Case, Case.id == Placement.case_id).where(Case.portfolio_id == portfolio_id)
    due = list(session.scalars(query.order_by(Placement.id)))
    for placement in due:
        placement.recalled_on = placement.expires_on
        placement.recall_reason = "到期撤案 / placement term ended"
    session.flush()
    return due


def active_placement(session: Session, *, case_id: int, as_of: date) -> Placement | None:
    """The placement a case is under on ``as_of``, if any (which agency may see it: PI-4)."""
    return session.scalar(select(Placement).where(Placement.case_id == case_id, _open_placement(as_of)))


def list_placements(
    session: Session, *, agency_id: int | None = None, case_id: int | None = None
) -> list[Placement]:
    """Placements of an agency or a case, oldest first."""
    query = select(Placement)
    if agency_id is not None:
        query = query.where(Placement.agency_id == agency_id)
    if case_id is not None:
        query = query.where(Placement.case_id == case_id)
    return list(session.scalars(query.order_by(Placement.id)))


@dataclass(frozen=True, slots=True)
class PlacedCase:
    """A case placed with an agency today, as the agency's people see it in their list."""

    placement_id: int
    case_id: int
    debtor_name: str
    placed_on: date
    expires_on: date
    balance_minor: int
    currency: str


def placed_now(session: Session, *, agency_id: int, as_of: date, limit: int = 500) -> list[PlacedCase]:
    """The cases placed with an agency on ``as_of`` (PI-4: what its people may open), soonest to expire
    first; one grouped query."""
    rows = session.execute(
        select(
            Placement.id,
            Placement.case_id,
            Debtor.name,
            Placement.placed_on,
            Placement.expires_on,
            func.coalesce(_case_balance(), 0),
            func.min(Account.currency),
        )
        .join(Case, Case.id == Placement.case_id)
        .join(Debtor, Debtor.id == Case.debtor_id)
        .outerjoin(Account, Account.case_id == Case.id)
        .where(Placement.agency_id == agency_id, _open_placement(as_of))
        .group_by(Placement.id, Placement.case_id, Debtor.name, Placement.placed_on, Placement.expires_on)
        .order_by(Placement.expires_on, Placement.case_id)
        .limit(limit)
    ).all()
    return [PlacedCase(r[0], r[1], r[2], r[3], r[4], int(r[5] or 0), r[6] or "CNY") for r in rows]


@dataclass(frozen=True, slots=True)
class PlacementCommission:
    """What an agency collected on one placement, and its commission on that."""

    placement_id: int
    case_id: int
    collected_minor: int
    commission_bps: int
    commission_minor: int


def commissions(
    session: Session,
    *,
    agency_id: int,
    payments: pl.DataFrame,
    period_start: date | None = None,
    period_end: date | None = None,
) -> list[PlacementCommission]:
    """Commission per placement of an agency on payments received while the case was placed with it.

    ``period_start`` / ``period_end`` (inclusive) narrow the payments further (a monthly statement).
    Commission = collected x ``commission_bps`` / 10000, rounded half up per placement.
    """
    agency = get_agency(session, agency_id=agency_id)
    placements = list_placements(session, agency_id=agency_id)
    if not placements:
        return []
    frame = pl.DataFrame(
        [(p.id, p.case_id, p.placed_on, p.recalled_on or p.expires_on) for p in placements],
        schema={"placement_id": pl.Int64, "case_id": pl.Int64, "start_on": pl.Date, "end_on": pl.Date},
        orient="row",
    )
    accounts = pl.DataFrame(
        [
            tuple(r)
            for r in session.execute(
                select(Account.id, Account.case_id).where(Account.case_id.in_(frame["case_id"].to_list()))
            )
        ],
        schema={"account_id": pl.Int64, "case_id": pl.Int64},
        orient="row",
    )
    pays = payments.select(pl.col(n).cast(t) for n, t in PAYMENT_SCHEMA.items())
    if period_start is not None:
        pays = pays.filter(pl.col("received_on") >= period_start)
    if period_end is not None:
        pays = pays.filter(pl.col("received_on") <= period_end)
    collected = (
        pays.join(accounts, on="account_id")
        .join(frame, on="case_id")
        .filter((pl.col("received_on") >= pl.col("start_on")) & (pl.col("received_on") < pl.col("end_on")))
        .group_by("placement_id")
        .agg(collected_minor=pl.col("amount_minor").sum())
    )
    totals = dict(collected.iter_rows())
    bps = agency.commission_bps
    return [
        PlacementCommission(
            placement_id=p.id,
            case_id=p.case_id,
            collected_minor=int(totals.get(p.id, 0)),
            commission_bps=bps,
            commission_minor=round_half_up(Decimal(int(totals.get(p.id, 0)) * bps) / BPS),
        )
        for p in placements
    ]
