"""Row-level problem codes and their sentences in Chinese and English."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "required": ("必填字段为空", "required value is missing"),
    "too_long": ("内容过长（最多 {max} 个字符）", "value is too long (at most {max} characters)"),
    "bad_amount": ("不是有效金额", "not a valid amount"),
    "negative_amount": ("金额不能为负数", "amount must not be negative"),
    "too_many_decimals": (
        "金额小数位超过币种允许的位数",
        "amount has more decimals than the currency allows",
    ),
    "bad_date": (
        "不是有效日期（支持 2025-06-07、2025/6/7、2025年6月7日、20250607 或 Excel 日期序号）",
        "not a valid date (use 2025-06-07, 2025/6/7, 2025年6月7日, 20250607 or an Excel serial)",
    ),
    "bad_int": ("不是有效整数", "not a whole number"),
    "bad_rate": ("不是有效利率（例如 24% 或 0.24）", "not a valid rate (e.g. 24% or 0.24)"),
    "bad_bool": ("应为 是/否", "must be yes or no"),
    "bad_enum": ("取值无法识别，可选：{allowed}", "unrecognised value; allowed: {allowed}"),
    "bad_currency": ("币种代码无效", "not a valid currency code"),
    "id_format": (
        "身份证号应为 18 位（17 位数字加校验位）",
        "ID number must be 18 characters (17 digits and a check character)",
    ),
    "id_check_digit": ("身份证号校验位错误", "ID number check digit is wrong"),
    "id_birth_date": ("身份证号中的出生日期不存在", "ID number contains an impossible birth date"),
    "id_region_unknown": (
        "身份证号的地区代码未收录（可能已撤销或变更），已接受",
        "ID number region code is not in the reference list (it may have been retired); accepted",
    ),
    "uscc_invalid": ("统一社会信用代码无效", "not a valid unified social credit code"),
    "dob_mismatch": ("出生日期与身份证号不一致", "date of birth does not match the ID number"),
    "bad_mobile": ("不是有效的手机号码", "not a valid mobile number"),
    "landline_in_mobile": (
        "这是固定电话号码，请放在固定电话列",
        "this is a landline number; put it in the landline column",
    ),
    "bad_landline": ("不是有效的固定电话号码（需含区号）", "not a valid landline number (area code needed)"),
    "bad_phone": ("不是有效的电话号码", "not a valid phone number"),
    "bad_email": ("不是有效的电子邮箱", "not a valid e-mail address"),
    "bad_bank_account": (
        "银行账号应为 10 到 30 位数字（可含空格或短横线）",
        "bank account must be 10 to 30 digits (spaces and dashes allowed)",
    ),
    "bank_account_luhn": (
        "银行卡号校验位不符（若为对公或存折账号可忽略），已接受",
        "bank card number fails the Luhn check (fine for a non-card account); accepted",
    ),
    "no_identity": (
        "需要身份证号或手机号以识别债务人",
        "an ID number or a mobile number is needed to identify the debtor",
    ),
    "no_amount": ("需要逾期金额或本金", "an overdue amount or a principal is needed"),
    "no_due_date": ("需要到期日或逾期天数", "a due date or days past due is needed"),
    "required_for_product": ("该产品类型必须填写此字段", "this product needs this field"),
    "due_before_origination": ("到期日早于放款日期", "due date is before the origination date"),
    "future_birth_date": ("出生日期不合理", "date of birth is implausible"),
    "instalment_count_range": ("期数应在 1 到 600 之间", "number of instalments must be between 1 and 600"),
    "ec_phone_without_name": (
        "有联系人电话但缺少联系人姓名",
        "a contact phone is given without the contact's name",
    ),
    "duplicate_ref": (
        "文件中借据号重复（另见第 {other} 行）",
        "account reference repeated in the file (see also row {other})",
    ),
    "id_conflict": (
        "该借据已属于另一债务人，而此身份证号属于其他债务人",
        "this account belongs to one debtor but the ID number belongs to another",
    ),
    "currency_mismatch": (
        "币种与资产包币种 {expected} 不一致",
        "currency differs from the portfolio's {expected}",
    ),
    "dpd_mismatch": ("逾期天数与到期日不一致", "days past due does not match the due date"),
    "unknown_column": ("未识别的列，已忽略", "unrecognised column, ignored"),
}


def message(code: str, locale: str = "zh_CN", **params: object) -> str:
    zh, en = MESSAGES.get(code, (code, code))
    text = zh if locale.startswith("zh") else en
    try:
        return text.format(**params)
    except (KeyError, IndexError):
        return text
