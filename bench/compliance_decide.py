"""How long does the compliance gate take with a 1,000-attempt history?

Prints p50 / p99 of `decide` beside a floor (iterating the same history once in Python), for the `cn` and
`us-regf` packs. Target: p99 under 1 ms. Run: ``PYTHONPATH=src python bench/compliance_decide.py``.
"""

from __future__ import annotations

import random
import statistics
import time
from datetime import UTC, datetime, timedelta

from arrears.compliance.pack import load_pack
from arrears.compliance.rules import decide
from arrears.compliance.schemas import Attempt, ContactPoint, Context, Outcome, PriorAttempt
from arrears.enums import Channel

RUNS = 2000


def _history(n: int, now: datetime, rnd: random.Random) -> list[PriorAttempt]:
    numbers = [ContactPoint(f"+86138001380{i:02d}", time_zones=("Asia/Shanghai",)) for i in range(3)]
    outcomes = list(Outcome)
    out = []
    for _ in range(n):
        at = now - timedelta(minutes=rnd.randint(1, 365 * 24 * 60))
        out.append(
            PriorAttempt(
                at=at,
                channel=rnd.choice([Channel.CALL, Channel.CALL, Channel.SMS]),
                contact_point=rnd.choice(numbers),
                account_ids=frozenset(rnd.sample([1, 2, 3], rnd.randint(1, 2))),
                collector_id=rnd.choice(["bank", "agency"]),
                outcome=rnd.choice(outcomes),
            )
        )
    rnd.shuffle(out)
    return out


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(len(ordered) * 0.99) - 1]


def main() -> None:
    rnd = random.Random(7)
    now = datetime(2026, 6, 3, 6, 0, tzinfo=UTC)  # 14:00 in Shanghai, 02:00 in New York
    history = _history(1000, now, rnd)
    context = Context()
    for name, zone in (("cn", "Asia/Shanghai"), ("us-regf", "America/New_York")):
        pack = load_pack(name)
        cp = ContactPoint("+8613800138000", time_zones=(zone,))
        decide_times, floor_times = [], []
        for i in range(RUNS):
            at = now + timedelta(hours=12 * (i % 2))  # alternate allowed and blocked by time of day
            attempt = Attempt(
                at=at, channel=Channel.CALL, contact_point=cp, account_ids=frozenset({1}), collector_id="bank"
            )
            t0 = time.perf_counter()
            decide(attempt, history, context, pack)
            t1 = time.perf_counter()
            n = 0
            for h in history:
                if h.at <= at:
                    n += 1
            t2 = time.perf_counter()
            decide_times.append((t1 - t0) * 1e6)
            floor_times.append((t2 - t1) * 1e6)
        p50, p99 = _percentiles(decide_times)
        f50, f99 = _percentiles(floor_times)
        print(
            f"{name:8s} decide p50 {p50:7.1f} us  p99 {p99:7.1f} us | floor (one pass) p50 {f50:6.1f} us"
            f"  p99 {f99:6.1f} us | p50 ratio {p50 / f50:4.1f}x | target p99 < 1000 us: "
            f"{'ok' if p99 < 1000 else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
