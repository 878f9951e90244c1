"""The fields an account file can carry: their kind, labels (zh/en) and which products require them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from arrears.enums import Product


class Kind(StrEnum):
    TEXT = "text"
    AMOUNT = "amount"
    DATE = "date"
    INT = "int"
    RATE = "rate"
    BOOL = "bool"
    ENUM = "enum"
    NATIONAL_ID = "national_id"
    MOBILE = "mobile"
    PHONE = "phone"  # mobile or landline
    LANDLINE = "landline"
    EMAIL = "email"
    CURRENCY = "currency"
    BANK_ACCOUNT = "bank_account"  # digits only, 10-30 of them (a card number passes the Luhn check)


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    kind: Kind
    label_zh: str
    label_en: str
    enum: str | None = None  # value table in the mapping for ENUM fields
    max_length: int = 200


FIELDS: dict[str, Field] = {
    f.name: f
    for f in [
        Field("external_ref", Kind.TEXT, "借据号", "account reference", max_length=100),
        Field("product", Kind.ENUM, "产品类型", "product", enum="product"),
        Field("debtor_kind", Kind.ENUM, "客户类型", "debtor kind", enum="debtor_kind"),
        Field("name", Kind.TEXT, "姓名", "name"),
        Field("id_type", Kind.ENUM, "证件类型", "ID type", enum="id_type"),
        Field("national_id", Kind.NATIONAL_ID, "身份证号", "ID number", max_length=40),
        Field("date_of_birth", Kind.DATE, "出生日期", "date of birth"),
        Field("gender", Kind.ENUM, "性别", "gender", enum="gender"),
        Field("address", Kind.TEXT, "地址", "address", max_length=400),
        Field("employer_name", Kind.TEXT, "单位名称", "employer"),
        Field("employer_address", Kind.TEXT, "单位地址", "employer address", max_length=400),
        Field("monthly_income", Kind.AMOUNT, "月收入", "monthly income"),
        Field("declared_assets", Kind.TEXT, "资产情况", "declared assets", max_length=2000),
        Field("preferred_language", Kind.ENUM, "首选语言", "preferred language", enum="language"),
        Field("mobile", Kind.MOBILE, "手机号", "mobile"),
        Field("mobile_verified", Kind.BOOL, "手机号已验证", "mobile verified"),
        Field("landline", Kind.LANDLINE, "固定电话", "landline"),
        Field("email", Kind.EMAIL, "邮箱", "e-mail"),
        Field("ec1_name", Kind.TEXT, "紧急联系人", "emergency contact"),
        Field("ec1_relation", Kind.ENUM, "紧急联系人关系", "emergency contact relation", enum="relation"),
        Field("ec1_phone", Kind.PHONE, "紧急联系人电话", "emergency contact phone"),
        Field("ec1_debt_related", Kind.BOOL, "紧急联系人债务相关", "emergency contact debt-related"),
        Field("ec2_name", Kind.TEXT, "紧急联系人2", "second emergency contact"),
        Field("ec2_relation", Kind.ENUM, "紧急联系人2关系", "second contact relation", enum="relation"),
        Field("ec2_phone", Kind.PHONE, "紧急联系人2电话", "second contact phone"),
        Field("ec2_debt_related", Kind.BOOL, "紧急联系人2债务相关", "second contact debt-related"),
        Field("currency", Kind.CURRENCY, "币种", "currency"),
        Field("original_principal", Kind.AMOUNT, "合同金额", "original principal"),
        Field("interest_rate", Kind.RATE, "年利率", "annual interest rate"),
        Field("penalty_rate", Kind.RATE, "罚息利率", "annual penalty rate"),
        Field("origination_date", Kind.DATE, "放款日期", "origination date"),
        Field("due_date", Kind.DATE, "到期日", "due date"),
        Field("dpd", Kind.INT, "逾期天数", "days past due"),
        Field("last_due_date", Kind.DATE, "最后还款日", "last due date"),
        Field("instalment_count", Kind.INT, "期数", "number of instalments"),
        Field("instalment_amount", Kind.AMOUNT, "每期金额", "instalment amount"),
        Field("first_instalment_date", Kind.DATE, "首期还款日", "first instalment date"),
        Field("principal", Kind.AMOUNT, "本金", "principal"),
        Field("interest", Kind.AMOUNT, "利息", "interest"),
        Field("penalty", Kind.AMOUNT, "罚息", "penalty interest"),
        Field("fees", Kind.AMOUNT, "费用", "fees"),
        Field("costs", Kind.AMOUNT, "实现债权费用", "costs"),
        Field("overdue_amount", Kind.AMOUNT, "逾期金额", "overdue amount"),
        Field("is_secured", Kind.BOOL, "是否有担保", "secured"),
        Field("bank_account", Kind.BANK_ACCOUNT, "还款账号", "bank account", max_length=32),
        Field("bank_name", Kind.TEXT, "开户行", "bank", max_length=100),
        Field("hold", Kind.ENUM, "特殊标记", "hold", enum="hold"),
        Field("hold_reason", Kind.TEXT, "标记原因", "hold reason", max_length=400),
    ]
}

AMOUNT_FIELDS = [name for name, f in FIELDS.items() if f.kind is Kind.AMOUNT]
BALANCE_FIELDS = ["principal", "interest", "penalty", "fees", "costs"]

# Columns a file must have in every case (or a default in the mapping).
REQUIRED_COLUMNS = ["external_ref", "name"]

# Fields each product needs on every row, beyond the common ones.
REQUIRED_BY_PRODUCT: dict[Product, list[str]] = {
    Product.CREDIT_CARD: [],
    Product.CONSUMER_LOAN: ["origination_date"],
    Product.INSTALMENT_LOAN: ["instalment_count", "instalment_amount", "first_instalment_date"],
    Product.BNPL: ["instalment_count", "instalment_amount", "first_instalment_date"],
    Product.INVOICE: ["origination_date"],
    Product.OTHER: [],
}

INSTALMENT_PRODUCTS = {Product.INSTALMENT_LOAN.value, Product.BNPL.value}


def label(field: str, locale: str = "zh_CN") -> str:
    f = FIELDS.get(field)
    if f is None:
        return field
    return f.label_zh if locale.startswith("zh") else f.label_en
