"""Rule packs and strategies as an administrator edits them: read, validate, save, and keep every version.

Both are TOML files. The packaged ones ship with arrears and are never overwritten; an administrator's
version is saved in the operator directory (``ARREARS_RULE_PACK_DIR`` / ``ARREARS_STRATEGY_DIR``, default
``arrears-config/rule-packs`` and ``arrears-config/strategies`` under the working directory), where it takes
precedence over a packaged file of the same name. A text is validated exactly as the gate and the daily run
will load it, and refused with the file, key and problem before anything is written. Every saved text is
also kept whole in ``config_change`` (who, when, the SHA-256), so any earlier version can be read back.
"""

from __future__ import annotations

import hashlib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears import clock
from arrears.compliance import pack as packs
from arrears.compliance import service as compliance_service
from arrears.errors import ArrearsError, NotFound, ValidationFailed
from arrears.models import ConfigChange
from arrears.strategy import loader
from arrears.strategy.definition import Strategy

RULE_PACK = "rule_pack"
STRATEGY = "strategy"
KINDS = (RULE_PACK, STRATEGY)
DEFAULT_DIRS = {RULE_PACK: Path("arrears-config/rule-packs"), STRATEGY: Path("arrears-config/strategies")}
ENV = {RULE_PACK: packs.PACK_DIR_ENV, STRATEGY: loader.STRATEGY_DIR_ENV}


@dataclass(frozen=True, slots=True)
class Definition:
    """One rule pack or strategy as the system would load it now."""

    kind: str
    name: str
    version: str
    title: str
    source: str  # "packaged" or "operator"
    path: str
    text: str


def _kind(kind: str) -> str:
    if kind not in KINDS:
        raise NotFound(
            f"未知的定义类型：{kind} / unknown kind of definition {kind!r}", code="definition_kind"
        )
    return kind


def operator_dir(kind: str) -> Path:
    """Where an administrator's files of this kind are written (the first operator directory)."""
    configured = os.environ.get(ENV[_kind(kind)], "")
    first = next((part for part in configured.split(os.pathsep) if part), "")
    return Path(first) if first else DEFAULT_DIRS[kind]


def _packaged_dir(kind: str) -> Path:
    if kind == RULE_PACK:
        return packs.builtin_dir()
    return Path(str(loader.packaged_dir("strategies")))


def _files(kind: str) -> dict[str, Path]:
    """Every file of a kind by name; operator files replace packaged ones."""
    found = {p.stem: p for p in sorted(_packaged_dir(kind).glob("*.toml"))}
    directory = operator_dir(kind)
    if directory.is_dir():
        found.update({p.stem: p for p in sorted(directory.glob("*.toml"))})
    return found


def _describe(kind: str, name: str, path: Path) -> Definition:
    text = path.read_text(encoding="utf-8")
    source = "operator" if path.parent.resolve() == operator_dir(kind).resolve() else "packaged"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        data = {}
    if kind == RULE_PACK:
        title = f"{data.get('title_zh', '')} / {data.get('title_en', '')}"
    else:
        title = f"{data.get('label_zh', '')} / {data.get('label_en', '')}"
    return Definition(kind, name, str(data.get("version", "")), title, source, str(path), text)


def list_definitions(kind: str) -> list[Definition]:
    """Every rule pack or strategy the system can load, by name."""
    return [_describe(kind, name, path) for name, path in sorted(_files(_kind(kind)).items())]


def get_definition(kind: str, name: str) -> Definition:
    """One definition by name (the operator's file if there is one, else the packaged one)."""
    path = _files(_kind(kind)).get(name)
    if path is None:
        raise NotFound(
            f"找不到 {name} / no {kind.replace('_', ' ')} named {name!r}", code="definition_not_found"
        )
    return _describe(kind, name, path)


def validate_text(kind: str, text: str) -> tuple[str, str]:
    """Check a text as the system will load it; return its (name, version) or raise `ValidationFailed`."""
    source = f"{kind.replace('_', '-')}.toml"
    try:
        if _kind(kind) == RULE_PACK:
            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ValidationFailed(f"{source}: not valid TOML: {exc}", code="bad_toml") from exc
            pack = packs.parse_pack(data, source=source)
            return pack.name, pack.version
        strategy = loader.parse_toml(text, source, Strategy)
        return strategy.name, str(strategy.version)
    except ValidationFailed:
        raise
    except ArrearsError as exc:  # the pack parser speaks ConfigurationError
        raise ValidationFailed(exc.message, code=exc.code, details=exc.details) from exc


def save_definition(session: Session, *, kind: str, text: str, user_id: int | None) -> ConfigChange:
    """Validate and save a rule pack or strategy in the operator directory, and record the version.

    A strategy's ``version`` must grow with each change of its text (strategies are versioned, and a run
    records which version decided); saving the same text again changes nothing.
    """
    name, version = validate_text(kind, text)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    current = _files(kind).get(name)
    if current is not None and current.read_text(encoding="utf-8") == text:
        latest = session.scalars(
            select(ConfigChange)
            .where(ConfigChange.kind == kind, ConfigChange.name == name)
            .order_by(ConfigChange.id.desc())
        ).first()
        if latest is not None and latest.content_sha256 == digest:
            return latest
    if kind == STRATEGY and current is not None:
        before = loader.parse_toml(current.read_text(encoding="utf-8"), str(current), Strategy)
        if before.version >= int(version) and current.read_text(encoding="utf-8") != text:
            raise ValidationFailed(
                f"策略 {name} 的 version 必须大于当前的 {before.version} / strategy {name}: version must be "
                f"greater than the current {before.version}",
                code="strategy_version_not_increased",
            )
    directory = operator_dir(kind)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.toml"
    tmp = path.with_suffix(".toml.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)  # readers see the old file or the new one, never half of one
    if kind == RULE_PACK:
        compliance_service.forget_rule_packs()
    change = ConfigChange(
        kind=kind,
        name=name,
        version=int(version) if version.isdigit() else None,
        content=text,
        content_sha256=digest,
        path=str(path),
        changed_by_id=user_id,
        at=clock.now(),
    )
    session.add(change)
    session.flush()
    return change


def history(session: Session, *, kind: str, name: str, limit: int = 50) -> list[ConfigChange]:
    """The saved versions of one definition, newest first."""
    return list(
        session.scalars(
            select(ConfigChange)
            .where(ConfigChange.kind == _kind(kind), ConfigChange.name == name)
            .order_by(ConfigChange.id.desc())
            .limit(limit)
        )
    )
