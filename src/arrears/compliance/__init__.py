"""The compliance gate (RULEBOOK.md): rule packs as data, the pure check `decide`, text linting and
limitation dates. No database here; the service that loads history and records decisions wraps these.
"""

from arrears.compliance.limitation import LimitationEvent, LimitationResult, limitation_date
from arrears.compliance.lint import Finding, LintResult, lint_text
from arrears.compliance.pack import RulePack, list_packs, load_pack
from arrears.compliance.rules import decide

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
