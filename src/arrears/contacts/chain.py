"""The hash chain of a case's contact record (DESIGN invariant 5).

Each attempt's ``hash`` is the SHA-256 of a canonical JSON document of its immutable fields, which
includes the previous attempt's hash (``prev_hash``; 64 zeros for the first attempt of a case). Changing
any stored field, deleting or inserting a row breaks the chain at that row, and `verify_rows` names it.

Canonical JSON: keys sorted, no whitespace, UTF-8 (not escaped), timestamps as ISO 8601 in UTC with
microseconds, account ids sorted. Pure: no database here.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64

# The fields that make up an attempt's content; everything but bookkeeping (id, created_at, updated_at).
CHAINED_FIELDS = (
    "case_id",
    "seq",
    "contact_point_id",
    "channel",
    "direction",
    "purpose",
    "collector",
    "agent_id",
    "account_ids",
    "started_at",
    "ended_at",
    "outcome",
    "notes",
    "message_text",
    "visit_place",
    "visit_staff",
    "id_shown",
    "recording_ref",
    "delivered_at",
    "evidence_ref",
    "allowed",
    "rule_ids",
    "decision",
    "corrects_id",
    "prev_hash",
)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:  # stored UTC without a zone (SQLite raw reads)
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def canonical(fields: Mapping[Any, Any]) -> str:
    """The canonical JSON document of an attempt's chained fields (see the module docstring)."""
    doc = {name: _plain(fields.get(name)) for name in CHAINED_FIELDS}
    doc["account_ids"] = sorted(doc["account_ids"] or [])
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def attempt_hash(fields: Mapping[Any, Any]) -> str:
    """SHA-256 (hex) of the canonical document, which already contains ``prev_hash``."""
    return hashlib.sha256(canonical(fields).encode("utf-8")).hexdigest()


@dataclass(frozen=True, slots=True)
class BrokenLink:
    """The first place a case's chain does not hold, and why (``problem`` is a machine code)."""

    case_id: int
    seq: int
    attempt_id: int | None
    problem: str  # "content_changed", "link_broken", "sequence_gap"
    zh: str
    en: str


@dataclass(frozen=True, slots=True)
class ChainReport:
    """Result of a verification: how much was checked and the first broken link of each broken case."""

    cases: int
    attempts: int
    broken: tuple[BrokenLink, ...]

    @property
    def ok(self) -> bool:
        """True when every chain checked holds."""
        return not self.broken


def verify_rows(rows: Iterable[Mapping[Any, Any]]) -> ChainReport:
    """Check rows ordered by (case_id, seq); each row holds CHAINED_FIELDS plus ``id`` and ``hash``.

    Reports, per case, the first link that does not hold: a missing sequence number (a deleted row), a
    ``prev_hash`` that is not the previous row's hash (a row removed or re-linked), or a ``hash`` that is
    not the hash of the row's content (a field changed).
    """
    broken: list[BrokenLink] = []
    cases = attempts = 0
    current: int | None = None
    expected_seq, prev, failed = 1, GENESIS, False
    for row in rows:
        attempts += 1
        case_id = int(row["case_id"])
        if case_id != current:
            current, expected_seq, prev, failed = case_id, 1, GENESIS, False
            cases += 1
        if failed:
            continue
        seq, attempt_id = int(row["seq"]), row.get("id")
        link: BrokenLink | None = None
        if seq != expected_seq:
            link = BrokenLink(
                case_id,
                seq,
                attempt_id,
                "sequence_gap",
                f"案件 {case_id} 的催收记录缺少第 {expected_seq} 条（下一条是第 {seq} 条）：记录被删除。",
                f"case {case_id}: attempt #{expected_seq} is missing (next is #{seq}): a record was deleted.",
            )
        elif row["prev_hash"] != prev:
            link = BrokenLink(
                case_id,
                seq,
                attempt_id,
                "link_broken",
                f"案件 {case_id} 第 {seq} 条记录与前一条的链接不符：前一条记录被改动、删除或替换。",
                f"case {case_id}: attempt #{seq} does not link to the one before it: "
                "the earlier record was changed, removed or replaced.",
            )
        elif attempt_hash(row) != row["hash"]:
            link = BrokenLink(
                case_id,
                seq,
                attempt_id,
                "content_changed",
                f"案件 {case_id} 第 {seq} 条记录（id {attempt_id}）的内容与其哈希不符：记录在写入后被改动。",
                f"case {case_id}: attempt #{seq} (id {attempt_id}) does not match its hash: "
                "it was changed after it was written.",
            )
        if link is not None:
            broken.append(link)
            failed = True
            continue
        expected_seq, prev = seq + 1, str(row["hash"])
    return ChainReport(cases=cases, attempts=attempts, broken=tuple(broken))


def heads_digest(heads: Iterable[tuple[int, int, str]]) -> str:
    """SHA-256 (hex) over every case's chain head, ``case_id:seq:hash`` lines in case order.

    The digest an operator keeps outside the database; the heads must come ordered by case id.
    """
    digest = hashlib.sha256()
    for case_id, seq, head in heads:
        digest.update(f"{case_id}:{seq}:{head}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class AnchorProblem:
    """Something an anchor shows about the record: a rewritten or missing anchored head, or bad anchor rows."""

    case_id: int | None
    seq: int | None
    attempt_id: int | None
    problem: str  # "anchor_not_found", "anchor_changed", "head_rewritten", "head_missing"
    zh: str
    en: str
