"""Human sentences (zh_CN and en) for decisions, lint findings and limitation results.

The sentences live in ``messages.toml`` beside this module, so they can be reviewed and translated
without reading code.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from typing import Any

from arrears.compliance.schemas import Reason

LANGS = ("zh", "en")


@lru_cache(maxsize=1)
def _catalog() -> dict[str, Any]:
    text = resources.files("arrears.compliance").joinpath("messages.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def term(key: str, lang: str) -> str:
    """A vocabulary item (flag kind, lint category, ``events.<kind>``) in one language; the key if unknown."""
    node: Any = _catalog()["terms"][lang]
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, str) else key


def sentences(code: str, rule_id: str, terms: dict[str, str] | None = None, **params: Any) -> tuple[str, str]:
    """The zh and en sentences for a message code; ``terms`` values are translated vocabulary keys."""
    entry = _catalog()["messages"][code]
    out: list[str] = []
    for lang in LANGS:
        values = {k: str(v) for k, v in params.items()}
        for name, key in (terms or {}).items():
            values[name] = term(key, lang)
        out.append(entry[lang].format(rule=rule_id, **values))
    return out[0], out[1]


def reason(code: str, rule_id: str, terms: dict[str, str] | None = None, **params: Any) -> Reason:
    """A `Reason` (rule id, code and both sentences)."""
    zh, en = sentences(code, rule_id, terms, **params)
    return Reason(rule_id=rule_id, code=code, zh=zh, en=en)
