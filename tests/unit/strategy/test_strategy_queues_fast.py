"""The heap-based allocation gives exactly the assignments of a plain scan over every collector."""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from arrears.strategy import queues as q
from arrears.strategy.queues import (
    AllocationOutcome,
    Assignment,
    Collector,
    MatchAttribute,
    QueueCase,
    QueueDef,
)

AS_OF = date(2026, 7, 1)


def scan_queue(ordered, queue, by_id, loads, as_of):  # type: ignore[no-untyped-def]
    """The straightforward reference: every pending case scans every collector."""
    workers = [c for c in by_id.values() if queue.name in c.queues]
    room = {c.collector_id: max(c.cap - loads[c.collector_id], 0) for c in workers}
    quotas = q.fair_quotas(len(ordered), room)
    queue_load = dict.fromkeys(room, 0)
    out, pending = [], []
    for case in ordered:
        current = by_id.get(case.collector_id) if case.collector_id is not None else None
        if (
            current is not None
            and current.collector_id in room
            and current.covers(case, queue.match_on)
            and not q._rotation_due(case, queue, as_of)
            and queue_load[current.collector_id] < quotas[current.collector_id]
            and loads[current.collector_id] < current.cap
        ):
            queue_load[current.collector_id] += 1
            loads[current.collector_id] += 1
            out.append(
                Assignment(
                    case.case_id,
                    queue.name,
                    current.collector_id,
                    AllocationOutcome.KEPT,
                    current.collector_id,
                )
            )
        else:
            pending.append(case)
    for case in pending:
        candidates = [
            c.collector_id
            for c in workers
            if loads[c.collector_id] < c.cap and c.covers(case, queue.match_on)
        ]
        if not candidates:
            out.append(
                Assignment(case.case_id, queue.name, None, AllocationOutcome.NO_COLLECTOR, case.collector_id)
            )
            continue
        least = min(queue_load[cid] for cid in candidates)
        tied = [cid for cid in candidates if queue_load[cid] == least]
        rotating = q._rotation_due(case, queue, as_of)
        others = [cid for cid in tied if cid != case.collector_id]
        if rotating:
            chosen = others[0] if others else tied[0]
        else:
            chosen = case.collector_id if case.collector_id in tied else tied[0]
        queue_load[chosen] += 1
        loads[chosen] += 1
        if case.collector_id is None:
            outcome = AllocationOutcome.ASSIGNED
        elif chosen == case.collector_id:
            outcome = AllocationOutcome.ROTATION_DEFERRED if rotating else AllocationOutcome.KEPT
        elif rotating:
            outcome = AllocationOutcome.ROTATED
        else:
            outcome = AllocationOutcome.REASSIGNED
        out.append(Assignment(case.case_id, queue.name, chosen, outcome, case.collector_id))
    return out


@st.composite
def setup(draw: st.DrawFn) -> tuple[list[QueueCase], list[Collector], q.QueueSet]:
    langs = ["zh", "en", "yue"]
    collectors = [
        Collector(
            collector_id=100 + i,
            queues=frozenset(draw(st.sampled_from([{"early"}, {"late"}, {"early", "late"}]))),
            cap=draw(st.integers(0, 12)),
            languages=draw(st.frozensets(st.sampled_from(langs))),
        )
        for i in range(draw(st.integers(1, 6)))
    ]
    ids = [c.collector_id for c in collectors] + [999]
    cases = [
        QueueCase(
            case_id=i,
            stage="s",
            dpd=draw(st.integers(1, 10)),
            priority=draw(st.integers(0, 4)),
            language=draw(st.sampled_from(langs)),
            held=draw(st.sampled_from([False] * 9 + [True])),
            collector_id=draw(st.one_of(st.none(), st.sampled_from(ids))),
            assigned_on=AS_OF - timedelta(days=draw(st.integers(0, 40))),
        )
        for i in range(draw(st.integers(0, 60)))
    ]
    rotation = draw(st.one_of(st.none(), st.integers(1, 40)))
    match = draw(st.sampled_from([(), (MatchAttribute.LANGUAGE,)]))
    queue_set = q.QueueSet(
        name="qs",
        version=1,
        label_zh="x",
        label_en="x",
        queues=(
            QueueDef(
                name="early", label_zh="x", label_en="x", dpd_max=5, match_on=match, rotation_days=rotation
            ),
            QueueDef(
                name="late", label_zh="x", label_en="x", dpd_min=6, match_on=match, rotation_days=rotation
            ),
        ),
    )
    return cases, collectors, queue_set


@settings(max_examples=400, deadline=None)
@given(setup())
def test_heap_allocation_equals_the_plain_scan(
    data: tuple[list[QueueCase], list[Collector], q.QueueSet],
) -> None:
    cases, collectors, queue_set = data
    fast = q.allocate(cases, collectors, queue_set, AS_OF)
    original = q._allocate_queue
    try:
        q._allocate_queue = scan_queue  # type: ignore[assignment]
        slow = q.allocate(cases, collectors, queue_set, AS_OF)
    finally:
        q._allocate_queue = original  # type: ignore[assignment]
    assert fast == slow


def _frame(cases: list[QueueCase]) -> pl.DataFrame:
    return pl.DataFrame([dataclasses.asdict(c) for c in cases], schema=q.CASE_SCHEMA, orient="row")


@settings(max_examples=400, deadline=None)
@given(setup())
def test_the_frame_allocation_equals_the_case_by_case_allocation(
    data: tuple[list[QueueCase], list[Collector], q.QueueSet],
) -> None:
    cases, collectors, queue_set = data
    expected = q.allocate(cases, collectors, queue_set, AS_OF)
    frame, loads = q.allocate_frame(_frame(cases), collectors, queue_set, AS_OF)
    assert frame.rows() == [
        (a.case_id, a.queue, a.collector_id, a.outcome.value) for a in expected.assignments
    ]
    assert loads == dict(expected.loads)


@settings(max_examples=300, deadline=None)
@given(setup(), st.booleans())
def test_a_first_allocation_counted_in_slots_equals_the_case_by_case_allocation(
    data: tuple[list[QueueCase], list[Collector], q.QueueSet], any_language: bool
) -> None:
    """No case has a collector yet and (or) every collector covers every case: rule 4 by counting."""
    cases, collectors, queue_set = data
    cases = [dataclasses.replace(c, collector_id=None, assigned_on=None) for c in cases]
    if any_language:
        collectors = [dataclasses.replace(c, languages=frozenset()) for c in collectors]
    expected = q.allocate(cases, collectors, queue_set, AS_OF)
    frame, loads = q.allocate_frame(_frame(cases), collectors, queue_set, AS_OF)
    assert frame.rows() == [
        (a.case_id, a.queue, a.collector_id, a.outcome.value) for a in expected.assignments
    ]
    assert loads == dict(expected.loads)
