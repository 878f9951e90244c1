"""Content checks for templates, scripts and free text (CN-4, CN-5, CN-6, CN-8, CN-22, US-8, US-11, US-13).

Pure: the phrase lists come from the rule pack. A text is searched for forbidden phrases in both languages
whatever its locale (mixed-language texts are common); required content is satisfied by a template
placeholder (``{balance}`` / ``{{ balance }}``), a phrase of the text's locale, a pattern, or the value of a
fact the caller supplies (the institution's name, the debtor's name). Chinese phrases match with any
whitespace between characters, so "法 院" does not slip through; English phrases match whole words.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from arrears.compliance import messages
from arrears.compliance.pack import DisclosureList, ForbiddenPhrases, RequiredContent, RulePack
from arrears.compliance.schemas import TemplateKind
from arrears.enums import Channel

_EXCERPT = 20
_MARK_OPEN, _MARK_CLOSE = "【", "】"


@dataclass(frozen=True, slots=True)
class Finding:
    """One problem in a text: rule id, what kind, where (``start``/``end``; None when content is missing)."""

    rule_id: str
    code: str  # lint_forbidden | lint_missing | lint_fact_missing | lint_third_party | lint_legal_threat
    category: str  # forbidden category or missing element
    start: int | None
    end: int | None
    match: str | None
    highlighted: str | None  # excerpt with the offending span marked 【...】
    zh: str
    en: str


@dataclass(frozen=True, slots=True)
class LintResult:
    """The findings for one text; ``ok`` when there are none."""

    kind: TemplateKind
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """Distinct rule ids of the findings, in order of first appearance."""
        return tuple(dict.fromkeys(f.rule_id for f in self.findings))


def _phrase_regex(phrase: str) -> str:
    phrase = phrase.strip()
    if phrase.isascii():
        words = [re.escape(w) for w in phrase.split()]
        return r"(?<![A-Za-z0-9])" + r"\s+".join(words) + r"(?![A-Za-z0-9])"
    return r"\s*".join(re.escape(ch) for ch in phrase if not ch.isspace())


def _placeholder_regex(name: str) -> str:
    return r"\{\{?\s*" + re.escape(name) + r"\s*(?:\|[^{}]*)?\}\}?"


def _alternation(parts: Iterable[str]) -> re.Pattern[str] | None:
    items = [p for p in parts if p]
    if not items:
        return None
    return re.compile("|".join(f"(?:{p})" for p in items), re.IGNORECASE)


def _lang_of(locale: str | None) -> tuple[str, ...]:
    if locale is None:
        return ("zh", "en")
    return ("zh",) if locale.lower().startswith("zh") else ("en",)


@dataclass(frozen=True, slots=True)
class _Compiled:
    forbidden: tuple[tuple[ForbiddenPhrases, re.Pattern[str] | None], ...]
    # per forbidden entry: its phrases folded (`_fold`), or None when it has raw patterns (no quick check)
    forbidden_keys: tuple[tuple[str, ...] | None, ...]
    third_party: re.Pattern[str] | None
    legal_threat: re.Pattern[str] | None
    required: dict[tuple[int, str], re.Pattern[str] | None]


# re.IGNORECASE also equates these with "i"; str.casefold does not
_DOTTED_I = str.maketrans({"\u0130": "i", "\u0131": "i"})


def _fold(text: str) -> str:
    """Whitespace removed, case folded: any span a phrase's pattern matches in ``text`` folds to a
    substring of ``_fold(text)``, so a phrase whose folded form is absent cannot match."""
    return "".join(text.split()).translate(_DOTTED_I).casefold()


def _quick_keys(entry: ForbiddenPhrases) -> tuple[str, ...] | None:
    """The folded phrases of an entry, for the quick check; None when the check would not be exact: the
    entry has raw patterns, or a phrase has a cased letter beyond ASCII (whose case-insensitive matches
    were not checked against ``_fold``)."""
    phrases = entry.zh + entry.en
    if entry.patterns or any(not ch.isascii() and ch.lower() != ch.upper() for p in phrases for ch in p):
        return None
    return tuple(key for key in (_fold(p) for p in phrases) if key)


def _disclosure(entry: DisclosureList | None) -> re.Pattern[str] | None:
    if entry is None:
        return None
    return _alternation(
        [
            *map(_placeholder_regex, entry.placeholders),
            *map(_phrase_regex, entry.zh + entry.en),
            *entry.patterns,
        ]
    )


def _compiled(pack: RulePack) -> _Compiled:
    cache = pack.cached("lint")
    found = cache.get("compiled")
    if isinstance(found, _Compiled):
        return found
    required: dict[tuple[int, str], re.Pattern[str] | None] = {}
    for i, req in enumerate(pack.lint.required):
        for langs in (("zh",), ("en",), ("zh", "en")):
            phrases = [p for lang in langs for p in (req.zh if lang == "zh" else req.en)]
            required[(i, ",".join(langs))] = _alternation(
                [*map(_placeholder_regex, req.placeholders), *map(_phrase_regex, phrases), *req.patterns]
            )
    compiled = _Compiled(
        forbidden=tuple(
            (entry, _alternation([*map(_phrase_regex, entry.zh + entry.en), *entry.patterns]))
            for entry in pack.lint.forbidden
        ),
        forbidden_keys=tuple(_quick_keys(entry) for entry in pack.lint.forbidden),
        third_party=_disclosure(pack.lint.third_party),
        legal_threat=_disclosure(pack.lint.legal_threat),
        required=required,
    )
    cache["compiled"] = compiled
    return compiled


def _highlight(text: str, start: int, end: int) -> str:
    lo, hi = max(0, start - _EXCERPT), min(len(text), end + _EXCERPT)
    head = ("…" if lo > 0 else "") + text[lo:start]
    tail = text[end:hi] + ("…" if hi < len(text) else "")
    return f"{head}{_MARK_OPEN}{text[start:end]}{_MARK_CLOSE}{tail}"


def _span_findings(
    text: str, pattern: re.Pattern[str] | None, rule_id: str, code: str, category: str
) -> list[Finding]:
    found: list[Finding] = []
    if pattern is None:
        return found
    for m in pattern.finditer(text):
        if m.end() == m.start():
            continue
        zh, en = messages.sentences(code, rule_id, {"category": category}, match=m.group(0))
        found.append(
            Finding(
                rule_id=rule_id,
                code=code,
                category=category,
                start=m.start(),
                end=m.end(),
                match=m.group(0),
                highlighted=_highlight(text, m.start(), m.end()),
                zh=zh,
                en=en,
            )
        )
    return found


def _required_applies(
    req: RequiredContent, kind: TemplateKind, channel: Channel | None, first_contact: bool
) -> bool:
    if kind not in req.kinds:
        return False
    if req.when == "first_contact":
        return first_contact
    if req.when == "electronic":
        return channel is not None and channel in req.electronic_channels
    return True


def lint_text(
    text: str,
    *,
    pack: RulePack,
    kind: TemplateKind,
    locale: str | None = None,
    channel: Channel | None = None,
    first_contact: bool = False,
    time_barred: bool = False,
    facts: Mapping[str, str] | None = None,
) -> LintResult:
    """Check a text against the pack's phrase lists and required content.

    ``kind`` selects the checks: every kind is searched for forbidden phrases (CN-5, CN-6); a
    ``third_party`` text may not disclose the debt (CN-4); ``debtor`` and ``collection_notice`` texts
    must carry the required elements (CN-5 institution on first contact, CN-8 notice content, US-11
    debt-collector disclosure, US-13 opt-out for ``channel`` SMS / e-mail); with ``time_barred`` a text
    may not mention legal action (CN-22, US-8). ``facts`` (given when the text is rendered for a real
    case) are values the text may carry; an element marked ``fact_required`` needs its fact known, so a
    CN-8 notice for a creditor without contact details is refused rather than printed with a blank.
    Findings carry spans into ``text``.
    """
    cache = _compiled(pack)
    findings: list[Finding] = []
    folded: str | None = None
    for (entry, pattern), keys in zip(cache.forbidden, cache.forbidden_keys, strict=True):
        if kind in entry.except_kinds:
            continue
        if keys is not None:
            # one substring test per phrase on the folded text instead of a regular-expression scan: a
            # message almost never holds a forbidden phrase, and the scan is most of the gate's cost
            folded = _fold(text) if folded is None else folded
            if not any(key in folded for key in keys):
                continue
        findings += _span_findings(text, pattern, entry.id, "lint_forbidden", entry.category)
    tp = pack.lint.third_party
    if kind == TemplateKind.THIRD_PARTY and tp is not None:
        findings += _span_findings(
            text,
            cache.third_party,
            tp.id,
            "lint_third_party",
            tp.category,
        )
    lt = pack.lint.legal_threat
    if time_barred and lt is not None and kind != TemplateKind.NOTE:
        findings += _span_findings(
            text,
            cache.legal_threat,
            lt.id,
            "lint_legal_threat",
            lt.category,
        )
    langs = ",".join(_lang_of(locale))
    for i, req in enumerate(pack.lint.required):
        if not _required_applies(req, kind, channel, first_contact):
            continue
        if req.fact_required and facts is not None and not any(facts.get(name) for name in req.facts):
            # A rendered text for a real case: the value the element stands for is missing (CN-8).
            zh, en = messages.sentences("lint_fact_missing", req.id, {"element": req.element})
            findings.append(
                Finding(req.id, "lint_fact_missing", req.element, None, None, None, None, zh=zh, en=en)
            )
            continue
        pattern = cache.required[(i, langs)]
        if pattern is not None and pattern.search(text):
            continue
        if facts and any(facts.get(name) and facts[name] in text for name in req.facts):
            continue
        zh, en = messages.sentences("lint_missing", req.id, {"element": req.element})
        findings.append(
            Finding(
                rule_id=req.id,
                code="lint_missing",
                category=req.element,
                start=None,
                end=None,
                match=None,
                highlighted=None,
                zh=zh,
                en=en,
            )
        )
    findings.sort(key=lambda f: (f.start if f.start is not None else len(text) + 1, f.rule_id, f.category))
    return LintResult(kind=kind, findings=tuple(findings))
