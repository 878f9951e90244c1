"""Vectorised validation and normalisation of one chunk of an account file.

Pure: a chunk of string columns in, a frame of normalised values and a frame of problems out. Every check
is a Polars expression over the whole column (no Python call per field), so a million rows validate in
seconds. Library knowledge is used where it lives: phone-number validity comes from the phonenumbers
metadata patterns, ID region codes from python-stdnum (looked up once per distinct code).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache

import phonenumbers
import polars as pl
from phonenumbers import PhoneMetadata

from arrears.enums import DebtorKind, IdType
from arrears.portfolios.fields import (
    BALANCE_FIELDS,
    FIELDS,
    INSTALMENT_PRODUCTS,
    REQUIRED_BY_PRODUCT,
    Kind,
)
from arrears.portfolios.mapping import Mapping
from arrears.portfolios.reader import ROW

ISSUE_SCHEMA = {
    "row": pl.Int64,
    "column": pl.String,
    "field": pl.String,
    "value": pl.String,
    "code": pl.String,
    "severity": pl.String,
    "detail": pl.String,
}

# Normalised columns written to the staging table, in order, with their Polars types.
STAGE_SCHEMA: dict[str, pl.DataType] = {
    "row_no": pl.Int64(),
    "external_ref": pl.String(),
    "product": pl.String(),
    "debtor_kind": pl.String(),
    "name": pl.String(),
    "id_type": pl.String(),
    "national_id": pl.String(),
    "date_of_birth": pl.Date(),
    "gender": pl.String(),
    "address": pl.String(),
    "employer_name": pl.String(),
    "employer_address": pl.String(),
    "monthly_income_minor": pl.Int64(),
    "declared_assets": pl.String(),
    "preferred_language": pl.String(),
    "mobile": pl.String(),
    "mobile_verified": pl.Boolean(),
    "landline": pl.String(),
    "landline_kind": pl.String(),
    "landline_ext": pl.String(),
    "email": pl.String(),
    "ec1_name": pl.String(),
    "ec1_relation": pl.String(),
    "ec1_phone": pl.String(),
    "ec1_kind": pl.String(),
    "ec1_debt_related": pl.Boolean(),
    "ec2_name": pl.String(),
    "ec2_relation": pl.String(),
    "ec2_phone": pl.String(),
    "ec2_kind": pl.String(),
    "ec2_debt_related": pl.Boolean(),
    "original_principal_minor": pl.Int64(),
    "interest_rate_annual_ppm": pl.Int64(),
    "penalty_rate_annual_ppm": pl.Int64(),
    "origination_date": pl.Date(),
    "due_date": pl.Date(),
    "last_due_date": pl.Date(),
    "instalment_count": pl.Int64(),
    "instalment_amount_minor": pl.Int64(),
    "first_instalment_date": pl.Date(),
    "principal_minor": pl.Int64(),
    "interest_minor": pl.Int64(),
    "penalty_minor": pl.Int64(),
    "fees_minor": pl.Int64(),
    "costs_minor": pl.Int64(),
    "overdue_amount_minor": pl.Int64(),
    "is_secured": pl.Boolean(),
    "bank_account": pl.String(),
    "bank_name": pl.String(),
    "hold": pl.String(),
    "hold_reason": pl.String(),
    "debtor_key": pl.String(),
}

CARD_DIGITS = 19  # the longest card number (ISO/IEC 7812)
_ID_WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
_ID_CHECK = "10X98765432"
_EXCEL_EPOCH = date(1899, 12, 30)


@dataclass(frozen=True)
class ChunkContext:
    mapping: Mapping
    columns: dict[str, str]  # field -> source header present in the file
    currency_exponent: int
    currency: str
    as_of: date


@lru_cache(maxsize=1)
def _cn_patterns() -> tuple[str, str]:
    md = PhoneMetadata.metadata_for_region("CN")
    assert md is not None and md.mobile is not None and md.fixed_line is not None
    return (
        f"^(?:{md.mobile.national_number_pattern})$",
        f"^(?:{md.fixed_line.national_number_pattern})$",
    )


def _null_if_empty(e: pl.Expr) -> pl.Expr:
    return pl.when(e == "").then(None).otherwise(e)


def _fold(e: pl.Expr) -> pl.Expr:
    return e.str.to_lowercase().str.replace_all(r"[\s_\-\u3000]", "")


@dataclass(frozen=True)
class IssueRule:
    """One possible problem: an expression giving a code per row (null = no problem) and its metadata."""

    code: pl.Expr
    field: str
    column: str
    severity: str = "error"
    detail: str | None = None


def _issue(
    code: pl.Expr, field: str, ctx: ChunkContext, severity: str = "error", detail: str | None = None
) -> IssueRule:
    return IssueRule(
        code=code, field=field, column=ctx.columns.get(field, ""), severity=severity, detail=detail
    )


# Fast paths. Nearly every value of a lender's file has one plain shape (digits, an ISO date, an 11-digit
# mobile); for those a single cheap expression gives the same value the general parsing would. A chunk whose
# values of a field all have the plain shape is parsed by the fast expression alone; a chunk with any other
# value runs the general parsing for that field (Polars evaluates both branches of a `when`, so mixing the
# two per row would cost the general parsing anyway). `_fast_ok` gives, per field kind, where the fast
# expression decides; the equivalence with the general parsing is tested in tests/unit/core.


def _amount_fast_ok(raw: pl.Expr, exponent: int) -> pl.Expr:
    return raw.str.contains(rf"^\d{{1,15}}(?:\.\d{{1,{exponent}}})?$" if exponent else r"^\d{1,15}$")


def _amount(raw: pl.Expr, exponent: int, *, general: bool = True) -> tuple[pl.Expr, pl.Expr]:
    """(minor units, problem code) of an amount column; ``general=False`` when every value is plain."""
    if general:
        return _amount_general(raw, exponent)
    if exponent:
        value = raw.cast(pl.Decimal(38, exponent)).to_physical().cast(pl.Int64)
    else:
        value = raw.cast(pl.Int64)
    return value, pl.lit(None, dtype=pl.String)


def _amount_general(raw: pl.Expr, exponent: int) -> tuple[pl.Expr, pl.Expr]:
    s = raw.str.replace_all(r"(?i)[¥$€£,\s]|CNY|RMB|USD|EUR|HKD|人民币|元", "")
    m = s.str.extract_groups(r"^(-?)(\d{1,15})(?:\.(\d+))?$")
    sign, int_part, frac = m.struct.field("1"), m.struct.field("2"), m.struct.field("3")
    frac_len = frac.str.len_chars().fill_null(0)
    frac_digits = frac.fill_null("").str.pad_end(exponent, "0").str.slice(0, exponent)
    frac_value = (
        pl.when(pl.lit(exponent) > 0).then(frac_digits.cast(pl.Int64, strict=False)).otherwise(0)
        if exponent
        else pl.lit(0, dtype=pl.Int64)
    )
    value = int_part.cast(pl.Int64, strict=False) * (10**exponent) + frac_value
    code = (
        pl.when(raw.is_null())
        .then(None)
        .when(int_part.is_null())
        .then(pl.lit("bad_amount"))
        .when(sign == "-")
        .then(pl.lit("negative_amount"))
        .when(frac_len > exponent)
        .then(pl.lit("too_many_decimals"))
        .otherwise(None)
    )
    return pl.when(code.is_null()).then(value).otherwise(None), code


def _iso_date(raw: pl.Expr) -> pl.Expr:
    return raw.str.to_date("%Y-%m-%d", strict=False)


def _date_fast_ok(raw: pl.Expr) -> pl.Expr:
    iso = _iso_date(raw)
    return raw.str.contains(r"^\d{4}-\d{2}-\d{2}$") & iso.dt.year().is_between(1900, 2200).fill_null(False)


def _date(raw: pl.Expr, *, general: bool = True) -> tuple[pl.Expr, pl.Expr]:
    """(date, problem code) of a date column; ``general=False`` when every value is a plausible ISO date."""
    if general:
        return _date_general(raw)
    return _iso_date(raw), pl.lit(None, dtype=pl.String)


def _date_general(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    ymd = raw.str.extract_groups(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?(?:[ T].*)?$")
    compact = raw.str.extract_groups(r"^(\d{4})(\d{2})(\d{2})$")
    y = pl.coalesce(ymd.struct.field("1"), compact.struct.field("1"))
    mo = pl.coalesce(ymd.struct.field("2"), compact.struct.field("2"))
    d = pl.coalesce(ymd.struct.field("3"), compact.struct.field("3"))
    text = pl.concat_str([y, mo.str.pad_start(2, "0"), d.str.pad_start(2, "0")], separator="-")
    parsed = text.str.to_date("%Y-%m-%d", strict=False)
    serial = raw.str.extract(r"^(\d{1,5})(?:\.\d+)?$", 1).cast(pl.Int64, strict=False)
    from_serial = pl.when(serial.is_between(1, 2958465)).then(pl.lit(_EXCEL_EPOCH) + pl.duration(days=serial))
    value = pl.coalesce(parsed, from_serial)
    plausible = value.dt.year().is_between(1900, 2200)
    code = pl.when(raw.is_null()).then(None).when(value.is_null() | ~plausible).then(pl.lit("bad_date"))
    return pl.when(code.is_null()).then(value).otherwise(None), code.otherwise(None)


def _int(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    s = raw.str.replace(r"(期|天|日|days?)$", "")
    value = s.str.extract(r"^(\d{1,9})$", 1).cast(pl.Int64, strict=False)
    code = pl.when(raw.is_not_null() & value.is_null()).then(pl.lit("bad_int")).otherwise(None)
    return value, code


def _rate(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    s = raw.str.replace_all(r"^(年化|年利率|年)", "").str.replace_all(r"\s", "")
    pct = s.str.ends_with("%")
    m = s.str.strip_suffix("%").str.extract_groups(r"^(\d{1,6})(?:\.(\d{1,8}))?$")
    int_part = m.struct.field("1").cast(pl.Int64, strict=False)
    frac = m.struct.field("2").fill_null("")
    # ppm of a fraction: int*1e6 + first 6 fraction digits; of a percentage: int*1e4 + 4 digits.
    as_fraction = int_part * 1_000_000 + frac.str.pad_end(6, "0").str.slice(0, 6).cast(pl.Int64)
    as_percent = int_part * 10_000 + frac.str.pad_end(4, "0").str.slice(0, 4).cast(pl.Int64)
    is_percent = pct | (int_part >= 1) & ~((int_part == 1) & (frac.str.replace_all("0", "") == ""))
    too_precise = pl.when(is_percent).then(frac.str.len_chars() > 4).otherwise(frac.str.len_chars() > 6)
    value = pl.when(is_percent).then(as_percent).otherwise(as_fraction)
    code = (
        pl.when(raw.is_null())
        .then(None)
        .when(int_part.is_null() | too_precise | (value > 10_000_000))
        .then(pl.lit("bad_rate"))
        .otherwise(None)
    )
    return pl.when(code.is_null()).then(value).otherwise(None), code


def _lookup(raw: pl.Expr, table: dict[str, str], code_name: str) -> tuple[pl.Expr, pl.Expr]:
    folded = _fold(raw)
    value = folded.replace_strict(table, default=None, return_dtype=pl.String)
    code = pl.when(raw.is_not_null() & value.is_null()).then(pl.lit(code_name)).otherwise(None)
    return value, code


def _mobile(raw: pl.Expr, *, general: bool = True) -> tuple[pl.Expr, pl.Expr]:
    """(E.164 value, problem code) for a mobile column; ``general=False`` when every value is a bare mobile."""
    if not general:
        return pl.lit("+86") + raw, pl.lit(None, dtype=pl.String)
    mobile_re, fixed_re = _cn_patterns()
    s = raw.str.replace_all(r"[\s\-()（）.]", "")
    national = s.str.replace(r"^(?:\+86|0086|86)(1\d{10})$", "${1}")
    ok = national.str.contains(mobile_re)
    landline_national = national.str.replace(r"^0", "")
    looks_landline = national.str.starts_with("0") & landline_national.str.contains(fixed_re)
    value = pl.when(ok).then(pl.lit("+86") + national)
    code = (
        pl.when(raw.is_null())
        .then(None)
        .when(ok)
        .then(None)
        .when(looks_landline)
        .then(pl.lit("landline_in_mobile"))
        .otherwise(pl.lit("bad_mobile"))
    )
    return value, code


def _phone_fast_ok(raw: pl.Expr) -> pl.Expr:
    """A bare 11-digit number the mobile pattern accepts."""
    mobile_re, _fixed_re = _cn_patterns()
    return raw.str.contains(r"^1\d{10}$") & raw.str.contains(mobile_re)


def _phone(raw: pl.Expr, bad_code: str, *, general: bool = True) -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    """(E.164 value, kind mobile/landline, extension, problem code) for a mobile-or-landline column.

    ``general=False`` when every value is a bare mobile number the mobile pattern accepts.
    """
    if general:
        return _phone_general(raw, bad_code)
    null = pl.lit(None, dtype=pl.String)
    return pl.lit("+86") + raw, pl.when(raw.is_not_null()).then(pl.lit("mobile")), null, null


def _phone_general(raw: pl.Expr, bad_code: str) -> tuple[pl.Expr, pl.Expr, pl.Expr, pl.Expr]:
    mobile_re, fixed_re = _cn_patterns()
    s = raw.str.replace_all(r"[\s()（）]", "")
    ext = s.str.extract(r"(?:转|ext\.?|x|#)(\d{1,6})$", 1)
    s = s.str.replace(r"(?:转|ext\.?|x|#)\d{1,6}$", "")
    mob = s.str.replace_all(r"[\-.]", "").str.replace(r"^(?:\+86|0086|86)(1\d{10})$", "${1}")
    is_mobile = mob.str.contains(mobile_re)
    parts = s.str.replace(r"^(?:\+86|0086)-?", "0").str.extract_groups(
        r"^0(\d{2,3})-?(\d{7,8})(?:-(\d{1,6}))?$"
    )
    land_national = pl.concat_str([parts.struct.field("1"), parts.struct.field("2")])
    is_land = land_national.str.contains(fixed_re).fill_null(False)
    value = pl.when(is_mobile).then(pl.lit("+86") + mob).when(is_land).then(pl.lit("+86") + land_national)
    kind = pl.when(is_mobile).then(pl.lit("mobile")).when(is_land).then(pl.lit("landline"))
    extension = pl.when(is_land).then(pl.coalesce(ext, parts.struct.field("3")))
    code = pl.when(raw.is_not_null() & value.is_null()).then(pl.lit(bad_code)).otherwise(None)
    return value, kind, extension, code


def _id_normalised(national_id: pl.Expr) -> pl.Expr:
    """An ID number as stored: upper case, without spaces and dashes."""
    return national_id.str.to_uppercase().str.replace_all(r"[\s\-]", "")


def _id_checks(nid: pl.Expr, id_type: pl.Expr, as_of: date) -> tuple[pl.Expr, pl.Expr]:
    """(birth date from ID, problem code) for PRC resident ID numbers, from the normalised ID column.

    The caller materialises ``nid`` first: the check digit reads it seventeen times.
    """
    is_ric = id_type == IdType.RESIDENT_ID.value
    well_formed = nid.str.contains(r"^\d{17}[\dX]$")
    # the 17 digits as one integer, then digit by digit with integer arithmetic (cheaper than 17 slices)
    body = nid.str.slice(0, 17).cast(pl.Int64, strict=False)
    total = pl.sum_horizontal([(body // 10 ** (16 - i)) % 10 * w for i, w in enumerate(_ID_WEIGHTS)])
    expected = pl.lit(_ID_CHECK).str.slice((total % 11).cast(pl.Int64), 1)
    birth = nid.str.slice(6, 8).str.to_date("%Y%m%d", strict=False)
    birth_ok = birth.is_not_null() & (birth <= pl.lit(as_of)) & (birth.dt.year() >= 1900)
    code = (
        pl.when(nid.is_null() | ~is_ric)
        .then(None)
        .when(~well_formed)
        .then(pl.lit("id_format"))
        .when(~birth_ok)
        .then(pl.lit("id_birth_date"))
        .when(nid.str.slice(17, 1) != expected)
        .then(pl.lit("id_check_digit"))
        .otherwise(None)
    )
    return pl.when(is_ric & well_formed & birth_ok).then(birth), code


def bank_account_digits(raw: pl.Expr) -> pl.Expr:
    """A bank account as stored: the digits without spaces and dashes (NFKC has folded full-width ones)."""
    return raw.str.replace_all(r"[\s\-]", "")


def luhn_words(digits: pl.Expr, max_digits: int = 36) -> list[pl.Expr]:
    """A column of digit strings (up to ``max_digits`` long) as 18-digit integers, least significant first.

    Leading zeros do not change a Luhn sum, so the strings are left-padded to whole words. The caller
    materialises the words before `luhn_check` reads each of them up to eighteen times.
    """
    words = -(-max_digits // 18)
    padded = digits.str.pad_start(18 * words, "0")
    return [padded.str.slice(18 * (words - 1 - w), 18).cast(pl.Int64, strict=False) for w in range(words)]


def luhn_check(words: list[pl.Expr], max_digits: int = 36) -> pl.Expr:
    """Whether the number held in ``words`` (see `luhn_words`) passes the Luhn check of ISO/IEC 7812 cards.

    Digit by digit with integer arithmetic: from the right, every second digit is doubled (less 9 when that
    passes 9); the number is valid when the sum ends in 0.
    """
    terms = []
    for k in range(max_digits):  # k: position from the right, 0-based
        d = (words[k // 18] // 10 ** (k % 18)) % 10
        terms.append(d if k % 2 == 0 else d * 2 - (d >= 5).cast(pl.Int64) * 9)
    return (pl.sum_horizontal(terms) % 10) == 0


def luhn_valid(digits: pl.Expr, max_digits: int = 36) -> pl.Expr:
    """Whether each digit string passes the Luhn check; null for a null, non-digit or longer value."""
    ok = luhn_check(luhn_words(digits, max_digits), max_digits)
    return pl.when(digits.str.contains(rf"^[0-9]{{1,{max_digits}}}$")).then(ok)


@lru_cache(maxsize=20_000)
def _region_known(prefix: str) -> bool:
    """Whether python-stdnum's region table knows the 6-digit code in any era.

    stdnum's full check also wants the code to have existed in the birth year, but people born before a
    county was created carry its later code, so a genuine ID fails there; only a code unknown in every era
    is worth a warning.
    """
    from stdnum import numdb

    props = {k for _part, p in numdb.get("cn/loc").info(prefix) for k in p}
    return "county" in props


@lru_cache(maxsize=100_000)
def _uscc_valid(code: str) -> bool:
    from stdnum.cn import uscc

    return bool(uscc.is_valid(code))


def _international(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


AMOUNT_FIELDS = (
    "original_principal",
    "instalment_amount",
    "monthly_income",
    *BALANCE_FIELDS,
    "overdue_amount",
)
DATE_FIELDS = ("date_of_birth", "origination_date", "due_date", "last_due_date", "first_instalment_date")
PHONE_FIELDS = ("landline", "ec1_phone", "ec2_phone")


def _fast_fields(src: pl.DataFrame, exponent: int) -> set[str]:
    """The fields of a chunk whose every value the fast path decides (see `_amount_fast_ok`)."""
    checks = {name: _amount_fast_ok(pl.col(name), exponent) for name in AMOUNT_FIELDS}
    checks |= {name: _date_fast_ok(pl.col(name)) for name in DATE_FIELDS}
    checks |= {name: _phone_fast_ok(pl.col(name)) for name in (*PHONE_FIELDS, "mobile")}
    flags = src.select(
        (pl.col(name).is_null() | ok.fill_null(False)).all().alias(name) for name, ok in checks.items()
    ).row(0, named=True)
    return {name for name, all_fast in flags.items() if all_fast}


def validate_chunk(raw: pl.DataFrame, ctx: ChunkContext) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Normalise one chunk; return (stage rows, problems).

    Rows with an error are returned too: the caller decides (all or nothing). Problems carry the row
    number a person sees, the source column, the value as written, a code and a severity.
    """
    mapping = ctx.mapping
    cols: list[pl.Expr] = [pl.col(ROW)]
    # NFKC leaves ASCII as it is, so only the columns holding other characters need it
    headers = [h for h in ctx.columns.values() if raw.schema.get(h) == pl.String]
    non_ascii = raw.select(pl.col(h).str.contains(r"[^\x00-\x7F]").any() for h in headers).row(0)
    needs_nfkc = {h for h, flag in zip(headers, non_ascii, strict=True) if flag}
    for name in FIELDS:
        header = ctx.columns.get(name)
        e = pl.col(header) if header is not None else pl.lit(None, dtype=pl.String)
        if header in needs_nfkc:
            e = e.str.normalize("NFKC")
        e = _null_if_empty(e.str.strip_chars())
        if name in mapping.defaults:
            e = e.fill_null(pl.lit(mapping.defaults[name]))
        cols.append(e.alias(name))
    src = raw.lazy().select(cols).collect()  # cleaned source text, one column per field

    fast = _fast_fields(src, ctx.currency_exponent)
    first: list[IssueRule] = []  # problems found while parsing (evaluated on src)

    def problem(code: pl.Expr, field: str, severity: str = "error", detail: str | None = None) -> None:
        first.append(_issue(code, field, ctx, severity=severity, detail=detail))

    out: dict[str, pl.Expr] = {ROW: pl.col(ROW)}
    for name in (
        "external_ref",
        "name",
        "product",
        "due_date",
        "national_id",
        "mobile",
        "origination_date",
        "instalment_count",
        "instalment_amount",
        "first_instalment_date",
    ):
        out[f"_raw_{name}"] = pl.col(name)
    out["national_id"] = pl.col("national_id")
    out["_any_amount_raw"] = pl.any_horizontal(
        [pl.col(n).is_not_null() for n in (*BALANCE_FIELDS, "overdue_amount")]
    )
    out["_mobile_raw"] = pl.col("mobile").str.replace_all(r"[\s\-()（）.]", "")

    for name, f in FIELDS.items():
        if f.kind is Kind.TEXT:
            out[name] = pl.col(name)
            problem(
                pl.when(pl.col(name).str.len_chars() > f.max_length).then(pl.lit("too_long")),
                name,
                detail=str(f.max_length),
            )
    for name in AMOUNT_FIELDS:
        value, code = _amount(pl.col(name), ctx.currency_exponent, general=name not in fast)
        out["monthly_income_minor" if name == "monthly_income" else f"{name}_minor"] = value
        problem(code, name)
    for name in DATE_FIELDS:
        value, code = _date(pl.col(name), general=name not in fast)
        out[name] = value
        problem(code, name)
    for name in ("dpd", "instalment_count"):
        value, code = _int(pl.col(name))
        out[name] = value
        problem(code, name)
    for name, target in (
        ("interest_rate", "interest_rate_annual_ppm"),
        ("penalty_rate", "penalty_rate_annual_ppm"),
    ):
        value, code = _rate(pl.col(name))
        out[target] = value
        problem(code, name)
    bool_table = mapping.values.get("bool", {})
    for name in ("mobile_verified", "ec1_debt_related", "ec2_debt_related", "is_secured"):
        value, code = _lookup(pl.col(name), bool_table, "bad_bool")
        out[name] = value.replace_strict(
            {"true": True, "false": False}, default=None, return_dtype=pl.Boolean
        )
        problem(code, name)
    for name, f in FIELDS.items():
        if f.kind is Kind.ENUM and f.enum is not None:
            value, code = _lookup(pl.col(name), mapping.values.get(f.enum, {}), "bad_enum")
            out[name] = value
            problem(code, name, detail=", ".join(mapping.allowed(f.enum)))
    cur = pl.col("currency").str.to_uppercase()
    problem(
        pl.when(cur.is_not_null() & (cur != ctx.currency)).then(pl.lit("currency_mismatch")),
        "currency",
        detail=ctx.currency,
    )

    mobile, mobile_code = _mobile(pl.col("mobile"), general="mobile" not in fast)
    out["mobile"] = mobile
    out["_mobile_code"] = mobile_code
    land_value, land_kind, land_ext, land_code = _phone(
        pl.col("landline"), "bad_landline", general="landline" not in fast
    )
    out["landline"], out["landline_kind"], out["landline_ext"] = land_value, land_kind, land_ext
    problem(land_code, "landline")
    for p in ("ec1", "ec2"):
        v, k, _ext, c = _phone(pl.col(f"{p}_phone"), "bad_phone", general=f"{p}_phone" not in fast)
        out[f"{p}_phone"], out[f"{p}_kind"] = v, k
        problem(c, f"{p}_phone")
        problem(
            pl.when(pl.col(f"{p}_phone").is_not_null() & pl.col(f"{p}_name").is_null()).then(
                pl.lit("ec_phone_without_name")
            ),
            f"{p}_phone",
            severity="warning",
        )
    bank = bank_account_digits(pl.col("bank_account"))
    bank_ok = bank.str.contains(r"^[0-9]{10,30}$")
    out["bank_account"] = pl.when(bank_ok).then(bank)
    problem(pl.when(bank.is_not_null() & ~bank_ok).then(pl.lit("bad_bank_account")), "bank_account")
    email = pl.col("email").str.to_lowercase()
    email_ok = email.str.contains(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    out["email"] = pl.when(email_ok).then(email)
    problem(pl.when(email.is_not_null() & ~email_ok.fill_null(False)).then(pl.lit("bad_email")), "email")

    # the problem codes are computed with the values, sharing their parsing
    for i, rule in enumerate(first):
        out[f"_first{i}"] = rule.code
    st = src.lazy().select(**out).collect()
    issues = [_collect_issues(st, [replace(r, code=pl.col(f"_first{i}")) for i, r in enumerate(first)], src)]
    st = st.drop([f"_first{i}" for i in range(len(first))])

    # International numbers (rare): phonenumbers per distinct value, replacing the CN-only verdict.
    intl_mask = (
        st["_mobile_raw"].str.starts_with("+") & ~st["_mobile_raw"].str.starts_with("+86")
    ).fill_null(False)
    if intl_mask.any():
        fixed = {v: _international(v) for v in st.filter(intl_mask)["_mobile_raw"].unique().to_list()}
        parsed = st["_mobile_raw"].replace_strict(fixed, default=None, return_dtype=pl.String)
        st = st.with_columns(
            mobile=pl.when(intl_mask).then(parsed).otherwise(pl.col("mobile")),
            _mobile_code=pl.when(intl_mask)
            .then(pl.when(parsed.is_null()).then(pl.lit("bad_mobile")))
            .otherwise(pl.col("_mobile_code")),
        )

    # identity
    st = st.with_columns(debtor_kind=pl.col("debtor_kind").fill_null(DebtorKind.PERSON.value))
    st = st.with_columns(
        id_type=pl.col("id_type").fill_null(
            pl.when(pl.col("debtor_kind") == DebtorKind.COMPANY.value)
            .then(pl.lit(IdType.USCC.value))
            .otherwise(pl.lit(IdType.RESIDENT_ID.value))
        )
    )
    st = st.with_columns(national_id=_id_normalised(pl.col("national_id")))
    birth_from_id, id_code = _id_checks(pl.col("national_id"), pl.col("id_type"), ctx.as_of)
    st = (
        st.lazy()
        .with_columns(
            _birth_from_id=birth_from_id,
            _id_code=id_code,
            _uscc_bad=pl.lit(False),
            _region_unknown=pl.lit(False),
        )
        .collect()
    )
    uscc_mask = (st["id_type"] == IdType.USCC.value) & st["national_id"].is_not_null()
    if uscc_mask.any():
        valid = {v: _uscc_valid(v) for v in st.filter(uscc_mask)["national_id"].unique().to_list()}
        st = st.with_columns(
            _uscc_bad=uscc_mask
            & ~pl.col("national_id").replace_strict(valid, default=True, return_dtype=pl.Boolean)
        )
    ric_ok = st.filter(pl.col("_id_code").is_null() & pl.col("_birth_from_id").is_not_null())
    if ric_ok.height:
        prefixes = ric_ok["national_id"].str.slice(0, 6).unique().to_list()
        unknown = [p for p in prefixes if not _region_known(p)]
        if unknown:
            st = st.with_columns(
                _region_unknown=pl.col("national_id").str.slice(0, 6).is_in(unknown).fill_null(False)
                & pl.col("_id_code").is_null()
            )

    # a card number (16-19 digits) carries a Luhn check digit; other accounts (passbooks, corporate) do not
    is_card = pl.col("bank_account").str.len_chars().is_between(16, 19)
    words = luhn_words(pl.col("bank_account"), CARD_DIGITS)
    st = st.with_columns([w.alias(f"_bank_w{i}") for i, w in enumerate(words)])
    card_ok = luhn_check([pl.col(f"_bank_w{i}") for i in range(len(words))], CARD_DIGITS)

    # amounts: a file with only an overdue amount puts it in principal
    no_components = pl.all_horizontal([pl.col(f"{c}_minor").is_null() for c in BALANCE_FIELDS])
    st = st.with_columns(
        _no_amount=~pl.col("_any_amount_raw"),
        principal_minor=pl.when(no_components)
        .then(pl.col("overdue_amount_minor"))
        .otherwise(pl.col("principal_minor")),
    )
    st = st.with_columns([pl.col(f"{c}_minor").fill_null(0) for c in BALANCE_FIELDS])
    st = st.with_columns(
        overdue_amount_minor=pl.col("overdue_amount_minor").fill_null(
            pl.sum_horizontal([pl.col(f"{c}_minor") for c in BALANCE_FIELDS])
        )
    )
    dpd_due = pl.lit(ctx.as_of) - pl.duration(days=pl.col("dpd"))
    st = st.with_columns(
        _dpd_mismatch=pl.col("due_date").is_not_null()
        & pl.col("dpd").is_not_null()
        & (pl.col("due_date") != dpd_due)
    )
    st = st.with_columns(due_date=pl.col("due_date").fill_null(dpd_due))

    later: list[IssueRule] = []

    def add(cond: pl.Expr, code: str, field: str, severity: str = "error") -> None:
        later.append(_issue(pl.when(cond).then(pl.lit(code)), field, ctx, severity=severity))

    later.append(_issue(pl.col("_mobile_code"), "mobile", ctx))
    later.append(_issue(pl.col("_id_code"), "national_id", ctx))
    add(pl.col("_uscc_bad"), "uscc_invalid", "national_id")
    add(pl.col("_region_unknown"), "id_region_unknown", "national_id", severity="warning")
    add(pl.col("_no_amount"), "no_amount", "overdue_amount")
    add(pl.col("_dpd_mismatch"), "dpd_mismatch", "dpd", severity="warning")
    add(is_card & ~card_ok, "bank_account_luhn", "bank_account", severity="warning")
    for req in ("external_ref", "name", "product"):
        add(pl.col(f"_raw_{req}").is_null(), "required", req)
    add(pl.col("due_date").is_null() & pl.col("_raw_due_date").is_null(), "no_due_date", "due_date")
    add(pl.col("_raw_national_id").is_null() & pl.col("_raw_mobile").is_null(), "no_identity", "national_id")
    for prod, needed in REQUIRED_BY_PRODUCT.items():
        for name in needed:
            add(
                (pl.col("product") == prod.value) & pl.col(f"_raw_{name}").is_null(),
                "required_for_product",
                name,
            )
    add(
        pl.col("origination_date").is_not_null() & (pl.col("due_date") < pl.col("origination_date")),
        "due_before_origination",
        "due_date",
    )
    add(
        pl.col("instalment_count").is_not_null() & ~pl.col("instalment_count").is_between(1, 600),
        "instalment_count_range",
        "instalment_count",
    )
    add(
        pl.col("date_of_birth").is_not_null() & (pl.col("date_of_birth") > pl.lit(ctx.as_of)),
        "future_birth_date",
        "date_of_birth",
    )
    add(
        pl.col("date_of_birth").is_not_null()
        & pl.col("_birth_from_id").is_not_null()
        & (pl.col("date_of_birth") != pl.col("_birth_from_id")),
        "dob_mismatch",
        "date_of_birth",
        severity="warning",
    )
    issues.append(_collect_issues(st, later, src))

    is_inst = pl.col("product").is_in(list(INSTALMENT_PRODUCTS))
    months = (pl.col("instalment_count") - 1).clip(lower_bound=0)
    final = st.lazy().with_columns(
        row_no=pl.col(ROW),
        date_of_birth=pl.col("date_of_birth").fill_null(pl.col("_birth_from_id")),
        # the 17th digit of a resident ID is odd for men, even for women
        gender=pl.col("gender").fill_null(
            pl.when(pl.col("_birth_from_id").is_not_null()).then(
                pl.when(pl.col("national_id").str.slice(16, 1).cast(pl.Int64, strict=False) % 2 == 1)
                .then(pl.lit("M"))
                .otherwise(pl.lit("F"))
            )
        ),
        mobile_verified=pl.col("mobile_verified").fill_null(mapping.options.own_mobile_verified),
        ec1_debt_related=pl.col("ec1_debt_related").fill_null(pl.col("ec1_relation") == "guarantor"),
        ec2_debt_related=pl.col("ec2_debt_related").fill_null(pl.col("ec2_relation") == "guarantor"),
        is_secured=pl.col("is_secured").fill_null(False),
        hold=pl.when(pl.col("hold") == "").then(None).otherwise(pl.col("hold")),
        last_due_date=pl.col("last_due_date").fill_null(
            pl.when(
                is_inst
                & pl.col("first_instalment_date").is_not_null()
                & pl.col("instalment_count").is_not_null()
            ).then(pl.col("first_instalment_date").dt.offset_by(pl.format("{}mo", months)))
        ),
        debtor_key=pl.when(pl.col("national_id").is_not_null())
        .then(pl.concat_str([pl.lit("id:"), pl.col("id_type"), pl.lit(":"), pl.col("national_id")]))
        .otherwise(pl.concat_str([pl.lit("mobile:"), pl.col("mobile")])),
    )
    stage = final.select([pl.col(c).cast(t) for c, t in STAGE_SCHEMA.items()]).collect()
    return stage, pl.concat(issues, how="vertical")


def _collect_issues(frame: pl.DataFrame, rules: list[IssueRule], source: pl.DataFrame) -> pl.DataFrame:
    """Rows where any rule fired, with the source value as written.

    All codes are computed in one parallel select; only the (few) rows with a problem are materialised.
    """
    if not rules:
        return pl.DataFrame(schema=ISSUE_SCHEMA)
    codes = (
        frame.lazy()
        .select(pl.col(ROW), *[r.code.cast(pl.String).alias(f"c{i}") for i, r in enumerate(rules)])
        .collect()
    )
    nulls = codes.null_count().row(0)
    parts = []
    for i, rule in enumerate(rules):
        if nulls[i + 1] == codes.height:
            continue
        hit = codes.filter(pl.col(f"c{i}").is_not_null())
        value = (
            source.filter(pl.col(ROW).is_in(hit[ROW].implode())).select(
                ROW, pl.col(rule.field).alias("value")
            )
            if rule.field in source.columns
            else hit.select(ROW, value=pl.lit(None, dtype=pl.String))
        )
        parts.append(
            hit.select(
                pl.col(ROW).alias("row"),
                column=pl.lit(rule.column),
                field=pl.lit(rule.field),
                code=pl.col(f"c{i}"),
                severity=pl.lit(rule.severity),
                detail=pl.lit(rule.detail, dtype=pl.String),
            ).join(value.rename({ROW: "row"}), on="row", how="left")
        )
    if not parts:
        return pl.DataFrame(schema=ISSUE_SCHEMA)
    return pl.concat(parts, how="vertical").select(list(ISSUE_SCHEMA)).cast(ISSUE_SCHEMA)  # type: ignore[arg-type]
