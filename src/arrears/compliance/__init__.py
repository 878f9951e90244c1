"""The compliance gate (RULEBOOK.md): rule packs as data, the pure check `decide`, text linting and
limitation dates. No database here; the service that loads history and records decisions wraps these.

The names below are imported on first use (PEP 562), so importing one submodule (the gate's `rules`, say)
does not also load the limitation engine and its data-frame library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from arrears.compliance.limitation import LimitationEvent, LimitationResult, limitation_date
    from arrears.compliance.lint import Finding, LintResult, lint_text
    from arrears.compliance.pack import RulePack, list_packs, load_pack
    from arrears.compliance.rules import decide

_WHERE = {
    "Finding": "lint",
    "LimitationEvent": "limitation",
    "LimitationResult": "limitation",
    "LintResult": "lint",
    "RulePack": "pack",
    "decide": "rules",
    "limitation_date": "limitation",
    "lint_text": "lint",
    "list_packs": "pack",
    "load_pack": "pack",
}

__all__ = [
    "Finding",
    "LimitationEvent",
    "LimitationResult",
    "LintResult",
    "RulePack",
    "decide",
    "limitation_date",
    "lint_text",
    "list_packs",
    "load_pack",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"arrears.compliance.{module}"), name)
    globals()[name] = value
    return value
