"""Finding and reading strategy files.

Strategies ship in ``arrears/strategy/strategies/*.toml``. An operator may add or override strategies in a
directory named by ``ARREARS_STRATEGY_DIR`` (or passed explicitly): a file there wins over a packaged one of
the same name. A file's stem must equal the ``name`` it declares, so a name always means one file.

Every problem is reported as `ValidationFailed` naming the file and the key (``stages[2] (firm).actions[0]
(call).repeat``), never as a traceback.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from arrears.errors import NotFound, ValidationFailed
from arrears.strategy.definition import Strategy

STRATEGY_DIR_ENV = "ARREARS_STRATEGY_DIR"
# where an operator's strategies live when ARREARS_STRATEGY_DIR is not set (relative to the working directory)
DEFAULT_OPERATOR_DIRS = {STRATEGY_DIR_ENV: Path("arrears-config/strategies")}
PACKAGED = "packaged"
OPERATOR = "operator"

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class StrategyInfo:
    """One available strategy: its name, version, labels and where it comes from."""

    name: str
    version: int
    label_zh: str
    label_en: str
    source: str  # "packaged" or "operator"
    location: str


def _operator_dir(directory: str | Path | None, env_var: str) -> Path | None:
    if directory is not None:
        return Path(directory)
    configured = os.environ.get(env_var)
    if configured:
        return Path(configured)
    default = DEFAULT_OPERATOR_DIRS.get(env_var)
    return default if default is not None and default.is_dir() else None


def packaged_dir(subpackage: str) -> Traversable:
    """The definitions that ship with arrears (``strategies`` or ``queues``)."""
    return _packaged_dir(subpackage)


def _packaged_dir(subpackage: str) -> Traversable:
    return resources.files("arrears.strategy").joinpath(subpackage)


def _loc_text(loc: Sequence[int | str], data: Any) -> str:
    """A pydantic error location as a readable key path, with stage/action names where known."""
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            child = node[item] if isinstance(node, list) and 0 <= item < len(node) else None
            if isinstance(child, dict) and isinstance(child.get("name"), str):
                label += f" ({child['name']})"
            parts.append(label)
            node = child
        else:
            parts.append(("." if parts else "") + item)
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts) or "(top level)"


def validation_message(source: str, exc: ValidationError, data: Any) -> str:
    """Render a pydantic error as lines of ``file: key: problem``."""
    lines = []
    for err in exc.errors():
        key = _loc_text(err["loc"], data)
        message = err["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {key}: {message}")
    return "\n".join(lines)


def parse_toml(text: str, source: str, model: type[M]) -> M:
    """Parse and validate TOML text into ``model``; errors name ``source`` and the key."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ValidationFailed(f"{source}: not valid TOML: {exc}", code="bad_toml") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(
            validation_message(source, exc, data),
            code="invalid_definition",
            details=[{"key": _loc_text(e["loc"], data), "message": e["msg"]} for e in exc.errors()],
        ) from exc


def _check_name(model_name: str, stem: str, source: str) -> None:
    if model_name != stem:
        raise ValidationFailed(
            f"{source}: name: declares {model_name!r} but the file is named {stem!r}.toml; they must match",
            code="invalid_definition",
        )


def load_packaged(subpackage: str, stem: str, model: type[M], name_of: Callable[[M], str]) -> M | None:
    """Load ``arrears/strategy/<subpackage>/<stem>.toml``, or None when there is no such file."""
    packaged = _packaged_dir(subpackage).joinpath(f"{stem}.toml")
    if not packaged.is_file():
        return None
    source = f"arrears/strategy/{subpackage}/{stem}.toml"
    loaded = parse_toml(packaged.read_text(encoding="utf-8"), source, model)
    _check_name(name_of(loaded), stem, source)
    return loaded


def load_file(path: Path, model: type[M], name_of: Callable[[M], str]) -> M:
    """Load one TOML file from disk; its stem must equal the declared name."""
    if not path.is_file():
        raise NotFound(f"no such file: {path}", code="definition_not_found")
    loaded = parse_toml(path.read_text(encoding="utf-8"), str(path), model)
    _check_name(name_of(loaded), path.stem, str(path))
    return loaded


def load_definition(
    name_or_path: str | Path,
    *,
    model: type[M],
    subpackage: str,
    directory: str | Path | None,
    env_var: str,
    name_of: Callable[[M], str],
) -> M:
    """Load a named or path-given TOML definition (shared by strategies and queue sets)."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or text.endswith(".toml") or "/" in text or os.sep in text:
        return load_file(Path(text), model, name_of)
    operator = _operator_dir(directory, env_var)
    if operator is not None and (operator / f"{text}.toml").is_file():
        return load_file(operator / f"{text}.toml", model, name_of)
    loaded = load_packaged(subpackage, text, model, name_of)
    if loaded is None:
        kind = "strategy" if subpackage == "strategies" else "queue set"
        raise NotFound(f"no {kind} named {text!r}", code="definition_not_found")
    return loaded


def load_strategy(name_or_path: str | Path, *, directory: str | Path | None = None) -> Strategy:
    """Load and validate a strategy by name (operator directory first, then packaged) or by file path.

    ``directory`` overrides ``ARREARS_STRATEGY_DIR``. Raises `NotFound` or `ValidationFailed`.
    """
    return load_definition(
        name_or_path,
        model=Strategy,
        subpackage="strategies",
        directory=directory,
        env_var=STRATEGY_DIR_ENV,
        name_of=_strategy_name,
    )


def _strategy_name(strategy: Strategy) -> str:
    return strategy.name


def list_strategies(*, directory: str | Path | None = None) -> list[StrategyInfo]:
    """Every available strategy, validated, sorted by name; operator files replace packaged ones."""
    found: dict[str, StrategyInfo] = {}
    for entry in sorted(_packaged_dir("strategies").iterdir(), key=lambda t: t.name):
        if entry.name.endswith(".toml"):
            stem = entry.name.removesuffix(".toml")
            strategy = load_packaged("strategies", stem, Strategy, _strategy_name)
            assert strategy is not None
            found[stem] = _info(strategy, PACKAGED, f"arrears/strategy/strategies/{entry.name}")
    operator = _operator_dir(directory, STRATEGY_DIR_ENV)
    if operator is not None and operator.is_dir():
        for path in sorted(operator.glob("*.toml")):
            strategy = load_file(path, Strategy, _strategy_name)
            found[path.stem] = _info(strategy, OPERATOR, str(path))
    return [found[k] for k in sorted(found)]


def _info(strategy: Strategy, source: str, location: str) -> StrategyInfo:
    return StrategyInfo(
        name=strategy.name,
        version=strategy.version,
        label_zh=strategy.label_zh,
        label_en=strategy.label_en,
        source=source,
        location=location,
    )


def strategy_from_mapping(data: Mapping[str, Any], *, source: str = "<mapping>") -> Strategy:
    """Validate an already-parsed strategy (e.g. from an API body); errors name ``source`` and the key."""
    try:
        return Strategy.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(validation_message(source, exc, data), code="invalid_definition") from exc
