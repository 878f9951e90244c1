"""Case work test data (builders): a small portfolio imported from a CSV through the normal import, and users."""

from __future__ import annotations

import csv
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.models import Account, AppUser, Portfolio
from arrears.portfolios import service as portfolios

AS_OF = date(2025, 7, 1)
HEADERS = [
    "借据号",
    "姓名",
    "身份证号",
    "手机号",
    "产品类型",
    "本金",
    "利息",
    "罚息",
    "费用",
    "逾期金额",
    "到期日",
    "放款日期",
    "地址",
]
# Valid resident ID numbers (check digits as in the import tests).
IDS = ["11010519491231002X", "440524198001010013", "110105199003070017"]


@dataclass
class Book:
    """A portfolio with three debtors: 张三 (two accounts), 李四, 王五 and users of every role."""

    portfolio: Portfolio
    accounts: dict[str, Account]
    users: dict[str, AppUser]
    tag: str

    def account(self, ref: str) -> Account:
        return self.accounts[ref]


def _rows(tag: str) -> list[list[str]]:
    return [
        [
            f"{tag}-1",
            "张三",
            IDS[0],
            "13800138000",
            "信用卡",
            "8000",
            "1200",
            "500",
            "300",
            "10000",
            "2025-03-01",
            "2024-03-01",
            "北京市朝阳区建国路1号",
        ],
        [
            f"{tag}-2",
            "张三",
            IDS[0],
            "13800138000",
            "消费贷",
            "4000",
            "600",
            "300",
            "100",
            "5000",
            "2025-04-15",
            "2024-04-15",
            "北京市朝阳区建国路1号",
        ],
        [
            f"{tag}-3",
            "李四",
            IDS[1],
            "13900001111",
            "信用卡",
            "20000",
            "1500",
            "800",
            "200",
            "3000",
            "2025-05-20",
            "2024-05-20",
            "广州市天河区体育西路2号",
        ],
        [
            f"{tag}-4",
            "王五",
            IDS[2],
            "13700001111",
            "消费贷",
            "3000",
            "100",
            "50",
            "0",
            "3150",
            "2025-06-10",
            "2024-06-10",
            "上海市浦东新区世纪大道3号",
        ],
    ]


def make_book(session: Session, tmp_path: Path, *, rule_pack: str = "cn") -> Book:
    tag = f"cw{uuid.uuid4().hex[:8]}"
    portfolio = portfolios.create_portfolio(
        session, name=f"casework-{tag}", creditor=f"星辰消费金融有限公司-{tag}", rule_pack=rule_pack
    )
    path = tmp_path / f"{tag}.csv"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADERS)
        writer.writerows(_rows(tag))
    report = portfolios.import_accounts(session, path=path, portfolio_name=portfolio.name, as_of=AS_OF)
    assert report.status == "applied", report.errors
    accounts = {
        a.external_ref.split("-", 1)[1]: a
        for a in session.scalars(select(Account).where(Account.portfolio_id == portfolio.id))
    }
    users = {}
    for role in ("collector", "supervisor", "compliance", "admin", "agency"):
        user = AppUser(username=f"{role}-{tag}", display_name=f"{role} {tag}", role=role)
        session.add(user)
        users[role] = user
    session.flush()
    return Book(portfolio=portfolio, accounts=accounts, users=users, tag=tag)
