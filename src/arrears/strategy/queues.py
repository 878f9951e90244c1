"""Work queues as data, and the pure allocation of cases to collectors.

A queue set (TOML, ``arrears/strategy/queues/*.toml`` or the operator's ``ARREARS_QUEUE_DIR``) lists queues
by stage and DPD range. Two queues may not both accept the same (stage, DPD): that is checked on load, so
every case lands in at most one queue.

`allocate` is deterministic: the same cases, collectors, queues and date give the same assignments.
Per queue, in file order:

1. Held (flagged) cases and cases placed with an agency are never allocated (PI-4: an agency's cases are
   worked by the agency only).
2. Each collector working the queue gets a fair quota: the cases are spread as evenly as the collectors'
   remaining caps allow (water-filling; lower collector ids take the remainder).
3. A case stays with its current collector when that collector still works the queue, matches the
   queue's ``match_on`` attributes, is under quota and cap, and the case is not due for rotation
   (``rotation_days`` with the same collector).
4. Every other case, highest priority first, goes to the least-loaded eligible collector under cap;
   a case due for rotation goes to someone else among the least loaded when there is such a collector,
   else it stays (rotation never unbalances the queue).

With no attribute constraints, the loads of a queue's collectors differ by at most one, except for
collectors that reached their cap.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Self

import polars as pl
from pydantic import Field, model_validator

from arrears.errors import ValidationFailed
from arrears.strategy.definition import Label, Name, Strategy, StrictModel
from arrears.strategy.loader import load_definition

QUEUE_DIR_ENV = "ARREARS_QUEUE_DIR"


class MatchAttribute(StrEnum):
    """Case attributes a queue can require collectors to cover."""

    PRODUCT = "product"
    REGION = "region"
    LANGUAGE = "language"
    CREDITOR = "creditor"


class QueueDef(StrictModel):
    """One work queue: which cases (stages, DPD range) and how they are matched and rotated.

    ``stages`` absent means any stage; ``dpd_min`` / ``dpd_max`` absent mean unbounded; both inclusive.
    """

    name: Name
    label_zh: Label
    label_en: Label
    stages: tuple[Name, ...] | None = Field(default=None, min_length=1)
    dpd_min: int | None = None
    dpd_max: int | None = None
    match_on: tuple[MatchAttribute, ...] = ()
    rotation_days: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _range(self) -> Self:
        if self.dpd_min is not None and self.dpd_max is not None and self.dpd_min > self.dpd_max:
            raise ValueError(f"dpd_min ({self.dpd_min}) is greater than dpd_max ({self.dpd_max})")
        if len(set(self.match_on)) != len(self.match_on):
            raise ValueError("match_on repeats an attribute")
        return self

    def accepts(self, stage: str | None, dpd: int) -> bool:
        """Whether a case in ``stage`` at ``dpd`` belongs to this queue (a case in no stage never does)."""
        if stage is None:
            return False
        if self.stages is not None and stage not in self.stages:
            return False
        return (self.dpd_min is None or dpd >= self.dpd_min) and (self.dpd_max is None or dpd <= self.dpd_max)


def queues_overlap(a: QueueDef, b: QueueDef) -> str | None:
    """A description of what both queues would accept, or None when they are disjoint."""
    if a.stages is None:
        common = None if b.stages is None else set(b.stages)
    else:
        common = set(a.stages) if b.stages is None else set(a.stages) & set(b.stages)
    if common is not None and not common:
        return None
    low_candidates = [v for v in (a.dpd_min, b.dpd_min) if v is not None]
    high_candidates = [v for v in (a.dpd_max, b.dpd_max) if v is not None]
    low = max(low_candidates) if low_candidates else None
    high = min(high_candidates) if high_candidates else None
    if low is not None and high is not None and low > high:
        return None
    stages = "any stage" if common is None else "stage " + ", ".join(sorted(common))
    dpd = f"DPD {'-inf' if low is None else low}..{'+inf' if high is None else high}"
    return f"{stages} at {dpd}"


class QueueSet(StrictModel):
    """A queue set file: named, versioned, with non-overlapping queues."""

    name: Name
    version: int = Field(ge=1)
    label_zh: Label
    label_en: Label
    queues: tuple[QueueDef, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _disjoint(self) -> Self:
        names = [q.name for q in self.queues]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"queue names repeat: {', '.join(duplicates)}")
        for i, first in enumerate(self.queues):
            for second in self.queues[i + 1 :]:
                both = queues_overlap(first, second)
                if both is not None:
                    raise ValueError(f"queues {first.name!r} and {second.name!r} overlap: both take {both}")
        return self

    def queue_for(self, stage: str | None, dpd: int) -> QueueDef | None:
        """The one queue that accepts a case, or None."""
        for queue in self.queues:
            if queue.accepts(stage, dpd):
                return queue
        return None


def load_queues(name_or_path: str | Path, *, directory: str | Path | None = None) -> QueueSet:
    """Load and validate a queue set by name (``ARREARS_QUEUE_DIR`` first, then packaged) or file path."""
    return load_definition(
        name_or_path,
        model=QueueSet,
        subpackage="queues",
        directory=directory,
        env_var=QUEUE_DIR_ENV,
        name_of=_queue_set_name,
    )


def _queue_set_name(queue_set: QueueSet) -> str:
    return queue_set.name


def check_queue_stages(queue_set: QueueSet, strategy: Strategy) -> None:
    """Refuse a queue set that names a stage the strategy does not have."""
    known = {s.name for s in strategy.stages}
    for queue in queue_set.queues:
        unknown = sorted(set(queue.stages or ()) - known)
        if unknown:
            raise ValidationFailed(
                f"queue set {queue_set.name!r}: queues ({queue.name}).stages: "
                f"{', '.join(unknown)} not in strategy {strategy.name!r}",
                code="invalid_definition",
            )


# ---------------------------------------------------------------------------------------------- allocation


@dataclass(frozen=True, slots=True)
class QueueCase:
    """A case as allocation sees it."""

    case_id: int
    stage: str | None
    dpd: int
    priority: int = 0
    product: str | None = None
    region: str | None = None
    language: str | None = None
    creditor: str | None = None
    held: bool = False  # an open flag stops collection
    placed: bool = False  # placed with an outside agency
    collector_id: int | None = None  # current collector
    assigned_on: date | None = None  # since when with that collector


@dataclass(frozen=True, slots=True)
class Collector:
    """A collector: the queues they work, their case cap, the attributes they cover (empty = any)."""

    collector_id: int
    queues: frozenset[str]
    cap: int
    products: frozenset[str] = frozenset()
    regions: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()
    creditors: frozenset[str] = frozenset()

    def covers(self, case: QueueCase, attributes: Iterable[MatchAttribute]) -> bool:
        """Whether this collector covers the case's value of every attribute named."""
        for attribute in attributes:
            allowed = _COLLECTOR_SETS[attribute](self)
            if allowed and _CASE_VALUES[attribute](case) not in allowed:
                return False
        return True


_COLLECTOR_SETS = {
    MatchAttribute.PRODUCT: lambda c: c.products,
    MatchAttribute.REGION: lambda c: c.regions,
    MatchAttribute.LANGUAGE: lambda c: c.languages,
    MatchAttribute.CREDITOR: lambda c: c.creditors,
}
_CASE_VALUES = {
    MatchAttribute.PRODUCT: lambda c: c.product,
    MatchAttribute.REGION: lambda c: c.region,
    MatchAttribute.LANGUAGE: lambda c: c.language,
    MatchAttribute.CREDITOR: lambda c: c.creditor,
}


class AllocationOutcome(StrEnum):
    KEPT = "kept"  # stays with the current collector
    ASSIGNED = "assigned"  # had no collector
    REASSIGNED = "reassigned"  # moved for balance, cap or eligibility
    ROTATED = "rotated"  # moved because rotation was due
    ROTATION_DEFERRED = "rotation_deferred"  # rotation due, but moving it now would unbalance the queue
    HELD = "held"  # flagged: not allocated
    PLACED = "placed"  # with an agency: not allocated
    NO_QUEUE = "no_queue"  # no queue accepts its stage and DPD
    NO_COLLECTOR = "no_collector"  # nobody eligible has room


@dataclass(frozen=True, slots=True)
class Assignment:
    """Where one case goes."""

    case_id: int
    queue: str | None
    collector_id: int | None
    outcome: AllocationOutcome
    previous_collector_id: int | None


@dataclass(frozen=True, slots=True)
class Allocation:
    """The result of `allocate`: one assignment per case (input order) and each collector's load."""

    assignments: tuple[Assignment, ...]
    loads: Mapping[int, int] = field(default_factory=dict)

    def by_case(self) -> dict[int, Assignment]:
        """Assignments keyed by case id."""
        return {a.case_id: a for a in self.assignments}


def fair_quotas(count: int, room: Mapping[int, int]) -> dict[int, int]:
    """Spread ``count`` cases over collectors as evenly as their ``room`` allows (lower ids first on ties)."""
    quotas = dict.fromkeys(room, 0)
    heap = [(0, cid) for cid in sorted(room) if room[cid] > 0]
    heapq.heapify(heap)
    for _ in range(count):
        if not heap:
            break
        load, cid = heapq.heappop(heap)
        quotas[cid] = load + 1
        if load + 1 < room[cid]:
            heapq.heappush(heap, (load + 1, cid))
    return quotas


def _rotation_due(case: QueueCase, queue: QueueDef, as_of: date) -> bool:
    return (
        queue.rotation_days is not None
        and case.collector_id is not None
        and case.assigned_on is not None
        and (as_of - case.assigned_on).days >= queue.rotation_days
    )


def allocate(
    cases: Sequence[QueueCase], collectors: Sequence[Collector], queue_set: QueueSet, as_of: date
) -> Allocation:
    """Allocate cases to collectors by queue (see the module docstring for the rules). Deterministic."""
    ids = [c.collector_id for c in collectors]
    if len(set(ids)) != len(ids):
        raise ValidationFailed("collector ids repeat", code="duplicate_collector")
    by_id = {c.collector_id: c for c in sorted(collectors, key=lambda c: c.collector_id)}
    loads = dict.fromkeys(by_id, 0)
    result: dict[int, Assignment] = {}
    members: dict[str, list[QueueCase]] = {q.name: [] for q in queue_set.queues}
    for case in cases:
        if case.case_id in result:
            raise ValidationFailed(f"case {case.case_id} appears twice", code="duplicate_case")
        queue = queue_set.queue_for(case.stage, case.dpd)
        queue_name = queue.name if queue is not None else None
        if case.held:
            outcome = AllocationOutcome.HELD
        elif case.placed:  # PI-4: an agency works its placed cases
            outcome = AllocationOutcome.PLACED
        elif queue is None:
            outcome = AllocationOutcome.NO_QUEUE
        else:
            members[queue.name].append(case)
            outcome = AllocationOutcome.NO_COLLECTOR  # until its queue is allocated below
        result[case.case_id] = Assignment(case.case_id, queue_name, None, outcome, case.collector_id)
    for queue in queue_set.queues:
        ordered = sorted(members[queue.name], key=lambda c: (-c.priority, c.case_id))
        for assignment in _allocate_queue(ordered, queue, by_id, loads, as_of):
            result[assignment.case_id] = assignment
    return Allocation(assignments=tuple(result[c.case_id] for c in cases), loads=dict(loads))


def _allocate_queue(
    ordered: list[QueueCase],
    queue: QueueDef,
    by_id: Mapping[int, Collector],
    loads: dict[int, int],
    as_of: date,
) -> list[Assignment]:
    workers = [c for c in by_id.values() if queue.name in c.queues]
    room = {c.collector_id: max(c.cap - loads[c.collector_id], 0) for c in workers}
    quotas = fair_quotas(len(ordered), room)
    queue_load = dict.fromkeys(room, 0)
    out: list[Assignment] = []
    pending: list[QueueCase] = []
    for case in ordered:
        current = by_id.get(case.collector_id) if case.collector_id is not None else None
        if (
            current is not None
            and current.collector_id in room
            and current.covers(case, queue.match_on)
            and not _rotation_due(case, queue, as_of)
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
    return out + _allocate_pending(pending, queue, by_id, loads, queue_load, room, as_of)


def _allocate_pending(
    pending: list[QueueCase],
    queue: QueueDef,
    by_id: Mapping[int, Collector],
    loads: dict[int, int],
    queue_load: dict[int, int],
    room: Mapping[int, int],
    as_of: date,
) -> list[Assignment]:
    """Rule 4: the cases not kept, in order, each to the least-loaded eligible collector under cap."""
    workers = [c for c in by_id.values() if queue.name in c.queues]
    out: list[Assignment] = []
    # The least-loaded eligible collectors come off one heap per distinct set of the case's match_on values
    # (a case's candidates depend only on those): O(log n) per case instead of a scan of every collector.
    heaps: dict[tuple[str | None, ...], list[tuple[int, int]]] = {}

    def least_loaded(heap: list[tuple[int, int]]) -> tuple[int, int] | None:
        while heap:
            load, cid = heap[0]
            if loads[cid] >= by_id[cid].cap:  # full for good: loads only grow
                heapq.heappop(heap)
            elif load != queue_load[cid]:  # stale entry: refresh it
                heapq.heapreplace(heap, (queue_load[cid], cid))
            else:
                return heap[0]
        return None

    for case in pending:
        key = tuple(_CASE_VALUES[a](case) for a in queue.match_on)
        heap = heaps.get(key)
        if heap is None:
            heap = [
                (queue_load[c.collector_id], c.collector_id)
                for c in workers
                if loads[c.collector_id] < c.cap and c.covers(case, queue.match_on)
            ]
            heapq.heapify(heap)
            heaps[key] = heap
        best = least_loaded(heap)
        if best is None:
            out.append(
                Assignment(case.case_id, queue.name, None, AllocationOutcome.NO_COLLECTOR, case.collector_id)
            )
            continue
        least, first = best
        current = by_id.get(case.collector_id) if case.collector_id is not None else None
        current_tied = (
            current is not None
            and current.collector_id in room
            and loads[current.collector_id] < current.cap
            and current.covers(case, queue.match_on)
            and queue_load[current.collector_id] == least
        )
        rotating = _rotation_due(case, queue, as_of)
        if rotating and first == case.collector_id:
            # rotation goes to the next least-loaded collector, when one is as little loaded
            held = heapq.heappop(heap)
            second = least_loaded(heap)
            heapq.heappush(heap, held)
            chosen = second[1] if second is not None and second[0] == least else first
        elif not rotating and current_tied and case.collector_id is not None:
            chosen = case.collector_id
        else:
            chosen = first
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


# `allocate` over frames: the columns of a `QueueCase`, and one row per case out.
CASE_SCHEMA: dict[str, pl.DataType] = {
    "case_id": pl.Int64(),
    "stage": pl.String(),
    "dpd": pl.Int64(),
    "priority": pl.Int64(),
    "product": pl.String(),
    "region": pl.String(),
    "language": pl.String(),
    "creditor": pl.String(),
    "held": pl.Boolean(),
    "placed": pl.Boolean(),
    "collector_id": pl.Int64(),
    "assigned_on": pl.Date(),
}
ASSIGNMENT_SCHEMA: dict[str, pl.DataType] = {
    "case_id": pl.Int64(),
    "queue": pl.String(),
    "assignee_id": pl.Int64(),
    "outcome": pl.String(),
}


def _queue_case(row: dict[str, object]) -> QueueCase:
    return QueueCase(**row)  # type: ignore[arg-type]


def allocate_frame(
    cases: pl.DataFrame, collectors: Sequence[Collector], queue_set: QueueSet, as_of: date
) -> tuple[pl.DataFrame, dict[int, int]]:
    """`allocate` over a frame of cases (`CASE_SCHEMA`): one row per case in input order (``case_id``,
    ``queue``, ``assignee_id``, ``outcome``) and each collector's load.

    The same rules, with rules 1-3 over whole columns: a case's queue is looked up once per distinct
    (stage, DPD); a case stays with its collector when it is eligible to (rule 3) and among the first
    ``quota`` such cases of that collector in the queue's order, which is what the one-by-one loop keeps.
    Only the cases that are not kept go through rule 4 one by one (`_allocate_pending`). Equal to
    `allocate` (a property test holds them together).
    """
    ids = [c.collector_id for c in collectors]
    if len(set(ids)) != len(ids):
        raise ValidationFailed("collector ids repeat", code="duplicate_collector")
    if cases["case_id"].n_unique() != cases.height:
        raise ValidationFailed("a case appears twice", code="duplicate_case")
    by_id = {c.collector_id: c for c in sorted(collectors, key=lambda c: c.collector_id)}
    loads = dict.fromkeys(by_id, 0)
    cases = cases.select(list(CASE_SCHEMA)).cast(pl.Schema(CASE_SCHEMA)).with_row_index("_row")
    pairs = cases.select("stage", "dpd").unique()
    pairs = pairs.with_columns(
        pl.Series(
            "queue",
            [
                (q.name if (q := queue_set.queue_for(st, d)) is not None else None)
                for st, d in pairs.iter_rows()
            ],
            dtype=pl.String(),
        )
    )
    cases = cases.join(pairs, on=["stage", "dpd"], how="left", nulls_equal=True)
    outcome = (
        pl.when(pl.col("held"))
        .then(pl.lit(AllocationOutcome.HELD.value))
        .when(pl.col("placed"))
        .then(pl.lit(AllocationOutcome.PLACED.value))
        .when(pl.col("queue").is_null())
        .then(pl.lit(AllocationOutcome.NO_QUEUE.value))
    )
    cases = cases.with_columns(outcome.alias("outcome"), pl.lit(None, pl.Int64()).alias("assignee_id"))
    done = [cases.filter(pl.col("outcome").is_not_null()).select("_row", *ASSIGNMENT_SCHEMA)]
    waiting = cases.filter(pl.col("outcome").is_null())
    attributes = [a.value for a in MatchAttribute]
    for queue in queue_set.queues:
        members = waiting.filter(pl.col("queue") == queue.name).sort(
            ["priority", "case_id"], descending=[True, False]
        )
        if members.height == 0:
            continue
        workers = [c for c in by_id.values() if queue.name in c.queues]
        room = {c.collector_id: max(c.cap - loads[c.collector_id], 0) for c in workers}
        quotas = fair_quotas(members.height, room)
        # whether the current collector covers the case: once per distinct (collector, attributes)
        combos = (
            members.filter(pl.col("collector_id").is_in(list(room)))
            .select("collector_id", *attributes)
            .unique()
        )
        covered = combos.with_columns(
            pl.Series(
                "_covers",
                [
                    by_id[row["collector_id"]].covers(
                        QueueCase(case_id=0, stage=None, dpd=0, **{a: row[a] for a in attributes}),
                        queue.match_on,
                    )
                    for row in combos.iter_rows(named=True)
                ],
                dtype=pl.Boolean(),
            )
        )
        rotation_due = (
            pl.lit(queue.rotation_days is not None)
            & pl.col("collector_id").is_not_null()
            & pl.col("assigned_on").is_not_null()
            & ((pl.lit(as_of) - pl.col("assigned_on")).dt.total_days() >= (queue.rotation_days or 0))
        ).fill_null(False)
        members = members.join(
            covered, on=["collector_id", *attributes], how="left", nulls_equal=True, maintain_order="left"
        )
        eligible = pl.col("_covers").fill_null(False) & ~rotation_due
        rank = pl.int_range(pl.len()).over(pl.when(eligible).then(pl.col("collector_id")))
        quota = pl.col("collector_id").replace_strict(quotas, default=0, return_dtype=pl.Int64)
        members = members.with_columns((eligible & (rank < quota)).alias("_kept"))
        kept = members.filter(pl.col("_kept")).with_columns(
            pl.col("collector_id").alias("assignee_id"), pl.lit(AllocationOutcome.KEPT.value).alias("outcome")
        )
        queue_load = dict.fromkeys(room, 0)
        for cid, n in kept.group_by("collector_id").len().iter_rows():
            queue_load[cid] += n
            loads[cid] += n
        done.append(kept.select("_row", *ASSIGNMENT_SCHEMA))
        pending = members.filter(~pl.col("_kept"))
        shared = _shared_candidates(pending, queue, workers, attributes)
        if pending.height and shared is not None:
            chosen = _water_fill(pending.height, shared, queue_load, loads, by_id)
            done.append(
                pending.select("_row", "case_id", pl.lit(queue.name).alias("queue")).with_columns(
                    pl.Series("assignee_id", chosen, dtype=pl.Int64()),
                    pl.when(pl.Series(chosen, dtype=pl.Int64()).is_null())
                    .then(pl.lit(AllocationOutcome.NO_COLLECTOR.value))
                    .otherwise(pl.lit(AllocationOutcome.ASSIGNED.value))
                    .alias("outcome"),
                )
            )
        elif pending.height:
            assigned = _allocate_pending(
                [_queue_case(r) for r in pending.select(list(CASE_SCHEMA)).iter_rows(named=True)],
                queue,
                by_id,
                loads,
                queue_load,
                room,
                as_of,
            )
            done.append(
                pending.select("_row")
                .with_columns(
                    pl.lit(queue.name).alias("case_id_queue"),
                    pl.Series("assignee_id", [a.collector_id for a in assigned], dtype=pl.Int64()),
                    pl.Series("outcome", [a.outcome.value for a in assigned], dtype=pl.String()),
                    pl.Series("case_id", [a.case_id for a in assigned], dtype=pl.Int64()),
                )
                .select("_row", "case_id", pl.col("case_id_queue").alias("queue"), "assignee_id", "outcome")
            )
    out = pl.concat(done, how="vertical_relaxed").sort("_row").drop("_row")
    return out.select(list(ASSIGNMENT_SCHEMA)), loads


def _shared_candidates(
    pending: pl.DataFrame, queue: QueueDef, workers: Sequence[Collector], attributes: Sequence[str]
) -> list[int] | None:
    """The collectors every pending case may go to, when that is one set for all of them and none of
    the cases has a collector yet (no rotation, no tie kept); else None."""
    if pending.height == 0 or pending["collector_id"].null_count() != pending.height:
        return None
    keys = pending.select(*attributes).unique()
    sets = {
        frozenset(
            c.collector_id
            for c in workers
            if c.covers(QueueCase(case_id=0, stage=None, dpd=0, **row), queue.match_on)
        )
        for row in keys.iter_rows(named=True)
    }
    return sorted(next(iter(sets))) if len(sets) == 1 else None


def _water_fill(
    n: int,
    candidates: Sequence[int],
    queue_load: dict[int, int],
    loads: dict[int, int],
    by_id: Mapping[int, Collector],
) -> list[int | None]:
    """Rule 4 for ``n`` cases without a collector that may all go to the same ``candidates``: each in
    turn to the least-loaded one in the queue under cap (lowest id on ties). The k-th case takes the k-th
    smallest free (load, collector) slot, so the slots are counted instead of taken one by one."""
    room = {cid: by_id[cid].cap - loads[cid] for cid in candidates if by_id[cid].cap - loads[cid] > 0}
    start = {cid: queue_load[cid] for cid in room}
    total = sum(room.values())
    take = min(n, total)
    picked: list[int] = []
    if take:

        def below(level: int) -> int:
            return sum(min(room[c], max(0, level - start[c])) for c in room)

        low, high = min(start.values()), max(start.values()) + take
        while low < high:  # the lowest level under which there are ``take`` slots
            mid = (low + high) // 2
            if below(mid) >= take:
                high = mid
            else:
                low = mid + 1
        ids = list(room)
        slots = (
            pl.DataFrame(
                {
                    "cid": ids,
                    "start": [start[c] for c in ids],
                    "end": [min(start[c] + room[c], low) for c in ids],
                },
                schema={"cid": pl.Int64(), "start": pl.Int64(), "end": pl.Int64()},
            )
            .select("cid", pl.int_ranges("start", "end").alias("level"))
            .explode("level")
            .drop_nulls("level")
            .sort(["level", "cid"])
            .head(take)
        )
        picked = slots["cid"].to_list()
        for cid, k in slots.group_by("cid").len().iter_rows():
            queue_load[cid] += k
            loads[cid] += k
    return [*picked, *([None] * (n - take))]
