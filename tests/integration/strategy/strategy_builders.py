"""Builders for the daily run's integration tests: a small portfolio imported from a CSV, collectors."""

from __future__ import annotations

import csv
import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session
from stdnum.cn import ric

from arrears import db
from arrears.models import Account, AppUser, CollectorProfile
from arrears.portfolios import service as portfolios
from arrears.strategy import queue_service

HEADERS = [
    "借据号",
    "姓名",
    "身份证号",
    "手机号",
    "邮箱",
    "地址",
    "产品类型",
    "逾期金额",
    "到期日",
    "特殊标记",
    "紧急联系人",
    "紧急联系人关系",
    "紧急联系人电话",
]
_serial = itertools.count(1)


def resident_id(n: int) -> str:
    """A valid PRC resident ID (check digit computed), distinct per n."""
    body = f"110105198{(n // 1000) % 10}{1 + n % 12:02d}{1 + n % 28:02d}{n % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")


@dataclass(frozen=True)
class Row:
    ref: str
    due: date
    amount: str = "1000.00"
    hold: str = ""
    email: bool = True
    originated: date | None = None  # with a rate: an account that accrues interest
    rate: str = ""
    person: int | None = None  # rows with the same person are one debtor (ID number and mobile)


@dataclass
class Portfolio:
    name: str
    ids: dict[str, int]  # external ref -> account id


_PEOPLE: dict[str, dict[int, int]] = {}  # portfolio name -> person -> the number their ID derives from


def import_portfolio(
    session: Session,
    tmp_path: Path,
    rows: list[Row],
    *,
    as_of: date,
    prefix: str = "p",
    into: Portfolio | None = None,
) -> Portfolio:
    """Create a portfolio with a unique name and import ``rows`` through the normal import (``into``: import
    them into that portfolio instead; a ``person`` there is the same debtor as before)."""
    if into is None:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        portfolios.create_portfolio(session, name=name, creditor=f"银行-{name}")
    else:
        name = into.name
    people = _PEOPLE.setdefault(name, {})
    path = tmp_path / f"{name}-{uuid.uuid4().hex[:6]}.csv"
    accruing = any(r.originated is not None for r in rows)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADERS + (["放款日期", "年利率", "罚息利率"] if accruing else []))
        for r in rows:
            n = next(_serial) + (uuid.uuid4().int % 500) * 1000
            if r.person is not None:
                n = people.setdefault(r.person, n)
            extra = [r.originated.isoformat() if r.originated else "", r.rate, r.rate] if accruing else []
            w.writerow(
                [
                    f"{name}-{r.ref}",
                    "张三",
                    resident_id(n),
                    f"139{n % 100_000_000:08d}",
                    f"d{n}@example.com" if r.email else "",
                    "北京市朝阳区建国路1号",
                    "信用卡",
                    r.amount,
                    r.due.isoformat(),
                    r.hold,
                    "李四",
                    "朋友",
                    f"137{n % 100_000_000:08d}",
                    *extra,
                ]
            )
    # imported in the morning of ``as_of`` (the ledger opens accounts on their import day)
    imported_at = datetime.combine(as_of, time(8), tzinfo=ZoneInfo("Asia/Shanghai")).astimezone(UTC)
    report = portfolios.import_accounts(session, path=path, portfolio_name=name, as_of=as_of, now=imported_at)
    assert report.status == "applied", report.issues.head(10)
    accounts = session.scalars(
        select(Account).join(Account.case).where(Account.external_ref.like(f"{name}-%"))
    )
    return Portfolio(name=name, ids={a.external_ref.removeprefix(f"{name}-"): a.id for a in accounts})


@contextmanager
def committed_collectors(engine: Engine, count: int) -> Iterator[list[int]]:
    """Collectors committed to the shared test database, taken off allocation afterwards so that other
    tests' allocations never see them."""
    with db.session_scope(engine) as s:
        ids = make_collectors(s, count)
    try:
        yield ids
    finally:
        with db.session_scope(engine) as s:
            s.execute(update(CollectorProfile).where(CollectorProfile.user_id.in_(ids)).values(active=False))


def make_collectors(
    session: Session, count: int = 2, *, queues: tuple[str, ...] = ("early", "late", "legal")
) -> list[int]:
    ids = []
    for _ in range(count):
        user = AppUser(username=f"agent-{uuid.uuid4().hex[:8]}", display_name="催收员", role="collector")
        session.add(user)
        session.flush()
        queue_service.set_collector(session, user=user.id, queues=list(queues), cap=1000)
        ids.append(user.id)
    return ids


DAY0 = date(2026, 3, 2)  # a Monday


def days(start: date, n: int) -> list[date]:
    return [start + timedelta(days=k) for k in range(n)]
