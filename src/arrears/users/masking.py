"""Masking of sensitive fields (PI-6): ID numbers, phone numbers, e-mail, bank accounts, addresses.

Pure functions. Views show masked values unless a role needs the full value and the reveal is logged.
"""

from __future__ import annotations


def mask_national_id(value: str | None) -> str | None:
    """Keep the region code (6) and the last 4 characters: ``110105********002X``."""
    if not value:
        return value
    if len(value) > 10:
        return value[:6] + "*" * (len(value) - 10) + value[-4:]
    if len(value) > 2:
        return value[0] + "*" * (len(value) - 2) + value[-1]
    return "*" * len(value)


def mask_phone(value: str | None) -> str | None:
    """Keep the country code, the first 3 and last 4 digits: ``+86 138****8000``."""
    if not value:
        return value
    if value.startswith("+86") and len(value) >= 12:
        national = value[3:]
        return f"+86 {national[:3]}{'*' * (len(national) - 7)}{national[-4:]}"
    digits = value.lstrip("+")
    if len(digits) <= 4:
        return "*" * len(value)
    return value[: len(value) - len(digits)] + digits[:2] + "*" * (len(digits) - 6) + digits[-4:]


def mask_bank_account(value: str | None) -> str | None:
    """Keep the last 4 digits only: ``**** **** **** 1234``.

    The masked form is the same shape whatever the number's length (a 10-digit passbook account or a
    19-digit card), so it gives away neither the length nor the issuing bank's prefix; a value of 4
    characters or fewer is masked entirely (``****``).
    """
    if not value:
        return value
    digits = "".join(ch for ch in value if not ch.isspace() and ch != "-")
    if len(digits) <= 4:
        return "****"
    return f"**** **** **** {digits[-4:]}"


def mask_email(value: str | None) -> str | None:
    """``z***@example.com``."""
    if not value or "@" not in value:
        return value
    local, domain = value.split("@", 1)
    return f"{local[:1]}***@{domain}"


def mask_address(value: str | None) -> str | None:
    """Keep the first 6 characters (province and city), mask the rest."""
    if not value:
        return value
    return value[:6] + "*" * min(8, max(0, len(value) - 6))


def mask_contact_value(kind: str, value: str | None) -> str | None:
    if kind in ("mobile", "landline"):
        return mask_phone(value)
    if kind == "email":
        return mask_email(value)
    if kind == "address":
        return mask_address(value)
    return value


# --- the same masks in SQL, for values masked where they are written (the import's record of changes) -----
# Plain SQL for SQLite and PostgreSQL (length, substr, replace, ||; the e-mail mask also needs the dialect's
# position function); ``expr`` is a SQL text expression. Each gives exactly what the Python function above
# gives for the same text (property-tested on both databases).

_STARS = "*" * 40  # as long as the longest stored ID number (debtor.national_id is 40 characters)


def sql_mask_national_id(expr: str) -> str:
    """``mask_national_id`` in SQL: region code and last 4 kept, the rest starred."""
    v = f"({expr})"
    return (
        f"CASE WHEN {v} IS NULL OR {v} = '' THEN {v}"
        f" WHEN length({v}) > 10 THEN substr({v}, 1, 6) || substr('{_STARS}', 1, length({v}) - 10)"
        f" || substr({v}, length({v}) - 3)"
        f" WHEN length({v}) > 2 THEN substr({v}, 1, 1) || substr('{_STARS}', 1, length({v}) - 2)"
        f" || substr({v}, length({v}))"
        f" ELSE substr('{_STARS}', 1, length({v})) END"
    )


def sql_mask_bank_account(expr: str) -> str:
    """``mask_bank_account`` in SQL for a number of digits, spaces and dashes: the last 4 digits only."""
    v = f"({expr})"
    digits = f"replace(replace({v}, ' ', ''), '-', '')"
    return (
        f"CASE WHEN {v} IS NULL OR {v} = '' THEN {v}"
        f" WHEN length({digits}) <= 4 THEN '****'"
        f" ELSE '**** **** **** ' || substr({digits}, length({digits}) - 3) END"
    )


def sql_mask_phone(expr: str) -> str:
    """``mask_phone`` in SQL."""
    v = f"({expr})"
    national = f"substr({v}, 4)"
    # the digits after a run of leading '+' (stored numbers carry at most one)
    digits = f"(CASE WHEN substr({v}, 1, 1) = '+' THEN substr({v}, 2) ELSE {v} END)"
    prefix = f"(CASE WHEN substr({v}, 1, 1) = '+' THEN '+' ELSE '' END)"
    return (
        f"CASE WHEN {v} IS NULL OR {v} = '' THEN {v}"
        f" WHEN substr({v}, 1, 3) = '+86' AND length({v}) >= 12 THEN '+86 ' || substr({national}, 1, 3)"
        f" || substr('{_STARS}', 1, length({national}) - 7) || substr({national}, length({national}) - 3)"
        f" WHEN length({digits}) <= 4 THEN substr('{_STARS}', 1, length({v}))"
        f" ELSE {prefix} || substr({digits}, 1, 2)"
        f" || substr('{_STARS}', 1, CASE WHEN length({digits}) > 6 THEN length({digits}) - 6 ELSE 0 END)"
        f" || substr({digits}, length({digits}) - 3) END"
    )


def sql_mask_email(expr: str, *, find: str) -> str:
    """``mask_email`` in SQL; ``find`` is the dialect's position function (``instr`` on SQLite,
    ``strpos`` on PostgreSQL)."""
    v = f"({expr})"
    at = f"{find}({v}, '@')"
    return (
        f"CASE WHEN {v} IS NULL OR {v} = '' OR {at} = 0 THEN {v}"
        f" ELSE substr({v}, 1, CASE WHEN {at} > 1 THEN 1 ELSE 0 END) || '***@' || substr({v}, {at} + 1) END"
    )


def sql_mask_address(expr: str) -> str:
    """``mask_address`` in SQL."""
    v = f"({expr})"
    return (
        f"CASE WHEN {v} IS NULL OR {v} = '' THEN {v}"
        f" WHEN length({v}) <= 6 THEN {v}"
        f" WHEN length({v}) >= 14 THEN substr({v}, 1, 6) || '********'"
        f" ELSE substr({v}, 1, 6) || substr('{_STARS}', 1, length({v}) - 6) END"
    )


def sql_mask_contact_value(kind: str, expr: str, *, find: str) -> str:
    """``mask_contact_value`` in SQL, ``kind`` and ``expr`` being SQL expressions."""
    return (
        f"CASE WHEN ({kind}) IN ('mobile', 'landline') THEN {sql_mask_phone(expr)}"
        f" WHEN ({kind}) = 'email' THEN {sql_mask_email(expr, find=find)}"
        f" WHEN ({kind}) = 'address' THEN {sql_mask_address(expr)} ELSE ({expr}) END"
    )
