"""Days-past-due buckets and the pure arithmetic of aging and roll rates (no database).

Buckets follow the usual receivables practice: current (not overdue), 1-30, 31-60, 61-90, 91-180,
181-360 and over 360 days past due. A roll rate is the share of the accounts in a bucket at one month end
that sit in a worse bucket at the next month end; the cure rate the share that sit in a better one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta

BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("current", 0, 0),
    ("1-30", 1, 30),
    ("31-60", 31, 60),
    ("61-90", 61, 90),
    ("91-180", 91, 180),
    ("181-360", 181, 360),
    ("361+", 361, None),
)
BUCKET_NAMES: tuple[str, ...] = tuple(name for name, _, _ in BUCKETS)
LEFT = "left"  # no longer in the portfolio's decisions at the next month end (paid off, closed, recalled)


def bucket_of(dpd: int) -> str:
    """The bucket of a number of days past due (zero or less is ``current``)."""
    if dpd <= 0:
        return BUCKET_NAMES[0]
    for name, _low, high in BUCKETS[1:]:
        if high is None or dpd <= high:
            return name
    return BUCKET_NAMES[-1]


def rank(bucket: str) -> int:
    """Position of a bucket, worst last; ``left`` ranks before ``current`` (it is a cure)."""
    return -1 if bucket == LEFT else BUCKET_NAMES.index(bucket)


def due_date_bounds(as_of: date) -> list[tuple[str, date]]:
    """For aging on ``as_of`` by due date: each bucket with the earliest due date still inside it,
    best bucket first (an account is in the first bucket whose bound its due date reaches).

    ``dpd = as_of - due_date``, so ``dpd <= high`` means ``due_date >= as_of - high``; the last bucket
    has no bound (``date.min``).
    """
    out = []
    for name, _low, high in BUCKETS:
        out.append((name, as_of - timedelta(days=high) if high is not None else date.min))
    return out


def month_end_snapshots(dates: Iterable[date]) -> list[date]:
    """The last date of each month among ``dates`` (the snapshot a month's roll is measured from),
    oldest first."""
    last: dict[tuple[int, int], date] = {}
    for d in dates:
        key = (d.year, d.month)
        if key not in last or d > last[key]:
            last[key] = d
    return [last[k] for k in sorted(last)]


@dataclass(frozen=True, slots=True)
class Roll:
    """Where the accounts of one bucket at one month end were at the next."""

    from_bucket: str
    accounts: int
    worse: int
    same: int
    better: int  # a better bucket, or left the portfolio

    @property
    def roll_bps(self) -> int:
        """Roll-forward rate in basis points (rounded half up)."""
        return (self.worse * 20_000 + self.accounts) // (2 * self.accounts) if self.accounts else 0

    @property
    def cure_bps(self) -> int:
        """Cure rate (better bucket or left) in basis points (rounded half up)."""
        return (self.better * 20_000 + self.accounts) // (2 * self.accounts) if self.accounts else 0


def rolls(moves: Mapping[tuple[str, str], int]) -> list[Roll]:
    """Roll and cure counts per starting bucket from ``(from_bucket, to_bucket) -> accounts``;
    buckets nobody started in are left out. ``to_bucket`` may be ``left``."""
    out = []
    for name in BUCKET_NAMES:
        here = {to: n for (frm, to), n in moves.items() if frm == name}
        total = sum(here.values())
        if not total:
            continue
        worse = sum(n for to, n in here.items() if rank(to) > rank(name))
        better = sum(n for to, n in here.items() if rank(to) < rank(name))
        out.append(Roll(name, total, worse, total - worse - better, better))
    return out


def fill_days(first: date, last: date, values: Mapping[date, int]) -> list[tuple[date, int]]:
    """Every day from ``first`` to ``last`` with its value (zero where nothing was recorded)."""
    days = (last - first).days + 1
    return [
        (first + timedelta(days=i), values.get(first + timedelta(days=i), 0)) for i in range(max(days, 0))
    ]


def month_start(day: date) -> date:
    """The first day of ``day``'s month."""
    return day.replace(day=1)


def months_back(day: date, count: int) -> date:
    """The first day of the month ``count`` months before ``day``'s month."""
    index = day.year * 12 + day.month - 1 - count
    return date(index // 12, index % 12 + 1, 1)
