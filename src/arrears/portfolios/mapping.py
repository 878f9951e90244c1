"""Column mapping: which source header feeds which field, default values, and value aliases.

The default mapping (`default_mapping.toml`) recognises common Chinese and English headers. A user
mapping file adds to it:

    [columns]              # source header = field
    "客户名称" = "name"
    [defaults]             # value for a field the file lacks (or leaves empty)
    product = "credit_card"
    [values.product]       # canonical value = [source values]
    credit_card = ["卡贷"]
    [options]
    own_mobile_verified = true
"""

from __future__ import annotations

import tomllib
import unicodedata
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from arrears.errors import ValidationFailed
from arrears.portfolios.fields import FIELDS


def fold(text: str) -> str:
    """Header / value folding: NFKC, trimmed, lower case, no spaces, underscores or hyphens."""
    s = unicodedata.normalize("NFKC", text).strip().lower()
    for ch in (" ", "_", "-", "\u3000", "\t"):
        s = s.replace(ch, "")
    return s


class MappingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # The debtor's own mobile from a lender's core system was verified at onboarding.
    own_mobile_verified: bool = True


class MappingFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str] = {}
    defaults: dict[str, str | int | float | bool] = {}
    values: dict[str, dict[str, list[str]]] = {}
    options: MappingOptions = MappingOptions()

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, v: dict[str, str]) -> dict[str, str]:
        for header, target in v.items():
            if target not in FIELDS and target != "ignore":
                raise ValueError(f"column {header!r} maps to unknown field {target!r}")
        return v

    @field_validator("defaults")
    @classmethod
    def _known_default_fields(cls, v: dict[str, object]) -> dict[str, object]:
        for name in v:
            if name not in FIELDS:
                raise ValueError(f"default for unknown field {name!r}")
        return v


@dataclass
class Mapping:
    """A resolved mapping: folded header -> field, defaults, value aliases per enum table."""

    headers: dict[str, str]
    defaults: dict[str, str]
    values: dict[str, dict[str, str]] = field(default_factory=dict)
    options: MappingOptions = field(default_factory=MappingOptions)
    source: str = "default"

    def field_for(self, header: str) -> str | None:
        return self.headers.get(fold(header))

    def allowed(self, table: str) -> list[str]:
        return sorted({v for v in self.values.get(table, {}).values() if v})


def _load_toml(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ValidationFailed(f"mapping file not found: {path}", code="mapping_not_found") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ValidationFailed(f"{path}: not valid TOML: {exc}", code="mapping_invalid") from exc


def load_mapping(path: Path | None = None) -> Mapping:
    """The default mapping, extended and overridden by a user mapping file if given."""
    default_text = (resources.files("arrears.portfolios") / "default_mapping.toml").read_text("utf-8")
    default = tomllib.loads(default_text)
    headers: dict[str, str] = {}
    for target, aliases in default["headers"].items():
        headers[fold(target)] = target
        for alias in aliases:
            headers[fold(alias)] = target
    values: dict[str, dict[str, str]] = {}
    for table, canon in default["values"].items():
        table_map: dict[str, str] = {}
        for canonical, aliases in canon.items():
            table_map[fold(canonical)] = canonical
            for alias in aliases:
                table_map[fold(alias)] = canonical
        values[table] = table_map
    for enum_table, enum_values in _enum_canonicals().items():
        for v in enum_values:
            values.setdefault(enum_table, {})[fold(v)] = v

    mapping = Mapping(headers=headers, defaults={}, values=values)
    if path is None:
        return mapping
    raw = _load_toml(path)
    try:
        user = MappingFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise ValidationFailed(f"{path}: {problems}", code="mapping_invalid") from exc
    for header, target in user.columns.items():
        mapping.headers[fold(header)] = target
    for name, value in user.defaults.items():
        mapping.defaults[name] = str(value).lower() if isinstance(value, bool) else str(value)
    for table, canon in user.values.items():
        for canonical, aliases in canon.items():
            for alias in aliases:
                mapping.values.setdefault(table, {})[fold(alias)] = canonical
    mapping.options = user.options
    mapping.source = str(path)
    return mapping


def _enum_canonicals() -> dict[str, list[str]]:
    from arrears.enums import DebtorKind, IdType, OwnerRelation, Product

    return {
        "product": [p.value for p in Product],
        "debtor_kind": [k.value for k in DebtorKind],
        "id_type": [t.value for t in IdType],
        "relation": [r.value for r in OwnerRelation],
        "hold": ["dispute", "cease", "deceased", "bankruptcy", "complaint", "legal_hold"],
        "gender": ["M", "F"],
        "language": ["zh_CN", "en"],
    }
