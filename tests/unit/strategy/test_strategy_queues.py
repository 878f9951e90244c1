"""Work queues: non-overlapping definitions, and allocation that respects caps, evenness and exclusions."""

from __future__ import annotations

import random
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from arrears.errors import ValidationFailed
from arrears.strategy.loader import load_strategy
from arrears.strategy.queues import (
    AllocationOutcome,
    Collector,
    MatchAttribute,
    QueueCase,
    QueueDef,
    QueueSet,
    allocate,
    check_queue_stages,
    fair_quotas,
    load_queues,
)

AS_OF = date(2026, 7, 1)
STAGES = ["a", "b", "c"]


def one_queue(**extra: object) -> QueueSet:
    return QueueSet(
        name="q",
        version=1,
        label_zh="队列",
        label_en="Queues",
        queues=(QueueDef(name="work", label_zh="x", label_en="x", **extra),),
    )


# ------------------------------------------------------------------------------------ definitions


def test_default_queue_set_loads_and_fits_the_default_strategy() -> None:
    queues = load_queues("default")
    check_queue_stages(queues, load_strategy("default"))
    assert queues.queue_for("gentle", 2).name == "early"
    assert queues.queue_for("intensive", 40).name == "late"
    assert queues.queue_for("legal", 400).name == "legal"
    assert queues.queue_for("held", 40) is None and queues.queue_for(None, 40) is None


def test_overlapping_queues_are_refused_naming_both(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(
        'name = "bad"\nversion = 1\nlabel_zh = "x"\nlabel_en = "x"\n'
        '[[queues]]\nname = "one"\nlabel_zh = "x"\nlabel_en = "x"\ndpd_min = 1\ndpd_max = 10\n'
        '[[queues]]\nname = "two"\nlabel_zh = "x"\nlabel_en = "x"\nstages = ["firm"]\ndpd_min = 10\n',
        encoding="utf-8",
    )
    with pytest.raises(ValidationFailed) as caught:
        load_queues(path)
    assert str(path) in caught.value.message
    assert "'one' and 'two' overlap: both take stage firm at DPD 10..10" in caught.value.message


def test_queue_naming_an_unknown_stage_is_refused() -> None:
    with pytest.raises(ValidationFailed, match="nowhere"):
        check_queue_stages(one_queue(stages=("nowhere",)), load_strategy("default"))


queue_def = st.builds(
    lambda i, stages, lo, hi: QueueDef(
        name=f"q{i}",
        label_zh="x",
        label_en="x",
        stages=stages,
        dpd_min=None if lo is None or (hi is not None and lo > hi) else lo,
        dpd_max=hi,
    ),
    st.integers(0, 10**6),
    st.one_of(st.none(), st.lists(st.sampled_from(STAGES), min_size=1, max_size=2, unique=True).map(tuple)),
    st.one_of(st.none(), st.integers(-10, 100)),
    st.one_of(st.none(), st.integers(-10, 100)),
)


@settings(max_examples=300)
@given(st.lists(queue_def, min_size=1, max_size=4, unique_by=lambda q: q.name))
def test_queue_ranges_accepted_on_load_never_overlap_and_refused_ones_do(queues: list[QueueDef]) -> None:
    def takers(stage: str, dpd: int) -> int:
        return sum(q.accepts(stage, dpd) for q in queues)

    worst = max(takers(s, d) for s in STAGES for d in range(-12, 103))
    try:
        QueueSet(name="s", version=1, label_zh="x", label_en="x", queues=tuple(queues))
    except ValidationError:
        assert worst >= 2  # refused only when some (stage, DPD) really has two queues
    else:
        assert worst <= 1


# ------------------------------------------------------------------------------------ allocation


@st.composite
def portfolio(draw: st.DrawFn) -> tuple[list[QueueCase], list[Collector], int]:
    n_collectors = draw(st.integers(1, 6))
    collectors = [
        Collector(collector_id=100 + i, queues=frozenset({"work"}), cap=draw(st.integers(0, 15)))
        for i in range(n_collectors)
    ]
    ids = [c.collector_id for c in collectors] + [999]  # 999: a collector who left
    n_cases = draw(st.integers(0, 60))
    cases = [
        QueueCase(
            case_id=i,
            stage="a",
            dpd=draw(st.integers(1, 30)),
            priority=draw(st.integers(0, 5)),
            held=draw(st.sampled_from([False] * 9 + [True])),
            placed=draw(st.sampled_from([False] * 9 + [True])),
            collector_id=draw(st.one_of(st.none(), st.sampled_from(ids))),
            assigned_on=AS_OF - timedelta(days=draw(st.integers(0, 60))),
        )
        for i in range(n_cases)
    ]
    rotation = draw(st.one_of(st.none(), st.integers(1, 60)))
    return cases, collectors, rotation  # type: ignore[return-value]


@settings(max_examples=300, deadline=None)
@given(portfolio())
def test_allocation_respects_caps_and_is_even_when_caps_allow(
    data: tuple[list[QueueCase], list[Collector], int],
) -> None:
    cases, collectors, rotation = data
    queues = one_queue(rotation_days=rotation)
    result = allocate(cases, collectors, queues, AS_OF)
    caps = {c.collector_id: c.cap for c in collectors}
    loads = dict.fromkeys(caps, 0)
    for case, assignment in zip(cases, result.assignments, strict=True):
        assert assignment.case_id == case.case_id
        if case.held or case.placed:
            assert assignment.collector_id is None
            assert assignment.outcome in (AllocationOutcome.HELD, AllocationOutcome.PLACED)
        if assignment.collector_id is not None:
            loads[assignment.collector_id] += 1
    assert loads == dict(result.loads)
    assert all(loads[c] <= caps[c] for c in caps)
    # evenness: nobody has more than one case more than anyone who still had room
    for i in caps:
        if loads[i] < caps[i]:
            assert all(loads[j] <= loads[i] + 1 for j in caps)
    # a case is left out only when every collector is full
    if any(a.outcome is AllocationOutcome.NO_COLLECTOR for a in result.assignments):
        assert all(loads[c] == caps[c] for c in caps)


@settings(max_examples=200, deadline=None)
@given(portfolio(), st.randoms(use_true_random=False))
def test_allocation_is_deterministic_whatever_the_input_order(
    data: tuple[list[QueueCase], list[Collector], int], rnd: random.Random
) -> None:
    cases, collectors, rotation = data
    queues = one_queue(rotation_days=rotation)
    first = allocate(cases, collectors, queues, AS_OF).by_case()
    shuffled_cases, shuffled_collectors = list(cases), list(collectors)
    rnd.shuffle(shuffled_cases)
    rnd.shuffle(shuffled_collectors)
    assert allocate(shuffled_cases, shuffled_collectors, queues, AS_OF).by_case() == first


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["zh", "en", "yue"]), st.sampled_from(["north", "south"])), max_size=40
    ),
    st.lists(
        st.tuples(
            st.frozensets(st.sampled_from(["zh", "en", "yue"])),
            st.frozensets(st.sampled_from(["north", "south"])),
            st.integers(0, 10),
        ),
        min_size=1,
        max_size=5,
    ),
)
def test_allocation_by_attributes_only_gives_cases_to_collectors_who_cover_them(
    case_attrs: list[tuple[str, str]], collector_attrs: list[tuple[frozenset[str], frozenset[str], int]]
) -> None:
    queues = one_queue(match_on=(MatchAttribute.LANGUAGE, MatchAttribute.REGION))
    cases = [QueueCase(i, "a", 10, language=lang, region=reg) for i, (lang, reg) in enumerate(case_attrs)]
    collectors = [
        Collector(i, frozenset({"work"}), cap, languages=langs, regions=regs)
        for i, (langs, regs, cap) in enumerate(collector_attrs)
    ]
    result = allocate(cases, collectors, queues, AS_OF)
    by_id = {c.collector_id: c for c in collectors}
    for case, assignment in zip(cases, result.assignments, strict=True):
        if assignment.collector_id is not None:
            assert by_id[assignment.collector_id].covers(case, queues.queues[0].match_on)
        else:
            assert assignment.outcome is AllocationOutcome.NO_COLLECTOR
            eligible = [c for c in collectors if c.covers(case, queues.queues[0].match_on)]
            assert all(result.loads[c.collector_id] == c.cap for c in eligible)


def test_cases_stay_with_their_collector_until_rotation_is_due() -> None:
    queues = one_queue(rotation_days=30)
    collectors = [Collector(1, frozenset({"work"}), 10), Collector(2, frozenset({"work"}), 10)]
    fresh_1 = QueueCase(1, "a", 10, collector_id=1, assigned_on=AS_OF - timedelta(days=29))
    due = QueueCase(2, "a", 10, collector_id=2, assigned_on=AS_OF - timedelta(days=30))
    fresh_2 = QueueCase(3, "a", 10, collector_id=2, assigned_on=AS_OF - timedelta(days=1))
    result = allocate([fresh_1, due, fresh_2], collectors, queues, AS_OF).by_case()
    assert (result[1].collector_id, result[1].outcome) == (1, AllocationOutcome.KEPT)
    assert (result[3].collector_id, result[3].outcome) == (2, AllocationOutcome.KEPT)
    assert (result[2].collector_id, result[2].outcome) == (1, AllocationOutcome.ROTATED)


def test_rotation_waits_rather_than_unbalance_the_queue() -> None:
    queues = one_queue(rotation_days=30)
    collectors = [Collector(1, frozenset({"work"}), 10), Collector(2, frozenset({"work"}), 10)]
    fresh = QueueCase(1, "a", 10, collector_id=1, assigned_on=AS_OF - timedelta(days=1))
    due = QueueCase(2, "a", 10, collector_id=2, assigned_on=AS_OF - timedelta(days=30))
    result = allocate([fresh, due], collectors, queues, AS_OF).by_case()
    assert (result[2].collector_id, result[2].outcome) == (2, AllocationOutcome.ROTATION_DEFERRED)


def test_agency_placed_and_held_cases_are_never_allocated() -> None:
    collectors = [Collector(1, frozenset({"work"}), 10)]
    cases = [QueueCase(1, "a", 10, placed=True, collector_id=1), QueueCase(2, "a", 10, held=True)]
    result = allocate(cases, collectors, one_queue(), AS_OF).by_case()
    assert result[1].outcome is AllocationOutcome.PLACED and result[1].collector_id is None
    assert result[2].outcome is AllocationOutcome.HELD and result[2].collector_id is None


def test_collector_who_no_longer_works_the_queue_loses_the_case() -> None:
    collectors = [Collector(1, frozenset({"other"}), 10), Collector(2, frozenset({"work"}), 10)]
    result = allocate([QueueCase(1, "a", 10, collector_id=1)], collectors, one_queue(), AS_OF).by_case()
    assert (result[1].collector_id, result[1].outcome) == (2, AllocationOutcome.REASSIGNED)


def test_higher_priority_cases_are_served_first_when_capacity_is_short() -> None:
    collectors = [Collector(1, frozenset({"work"}), 1)]
    cases = [QueueCase(1, "a", 10, priority=5), QueueCase(2, "a", 10, priority=50)]
    result = allocate(cases, collectors, one_queue(), AS_OF).by_case()
    assert result[2].collector_id == 1 and result[1].outcome is AllocationOutcome.NO_COLLECTOR


def test_fair_quotas_fill_evenly_up_to_room() -> None:
    assert fair_quotas(7, {1: 10, 2: 10, 3: 1}) == {1: 3, 2: 3, 3: 1}
    assert fair_quotas(2, {1: 5, 2: 5, 3: 5}) == {1: 1, 2: 1, 3: 0}
