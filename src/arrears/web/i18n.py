"""The desk's words in zh_CN (default) and English, from one TOML catalog per locale.

Keys are English identifiers; a missing key falls back to the other locale, then to the key itself, so a
page never breaks on a missing word (a test checks both catalogs have the same keys).
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from typing import Any

LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"


@cache
def catalog(locale: str) -> dict[str, Any]:
    """The parsed catalog of a locale (``web/messages/<locale>.toml``)."""
    name = locale if locale in LOCALES else DEFAULT_LOCALE
    text = resources.files("arrears.web").joinpath("messages", f"{name}.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


def pick_locale(*candidates: str | None) -> str:
    """The first supported locale among the candidates (cookie, user setting, server default)."""
    for value in candidates:
        if value in LOCALES:
            return value
    return DEFAULT_LOCALE


class Translator:
    """``t("key", name=value)`` for flat keys, ``t.label("outcomes", "busy")`` for grouped labels."""

    def __init__(self, locale: str) -> None:
        self.locale = pick_locale(locale)
        self._fallback = "en" if self.locale != "en" else DEFAULT_LOCALE

    def __call__(self, key: str, **values: Any) -> str:
        text = catalog(self.locale).get(key)
        if not isinstance(text, str):
            text = catalog(self._fallback).get(key, key)
        return str(text).format(**values) if values else str(text)

    def label(self, group: str, value: str | None) -> str:
        """A grouped label (products, outcomes, relations ...), or the value itself when unknown."""
        if value is None:
            return ""
        for name in (self.locale, self._fallback):
            found = catalog(name).get(group, {}).get(value)
            if isinstance(found, str):
                return found
        return value
