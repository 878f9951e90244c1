"""A realistic synthetic portfolio: zh_CN names and addresses, valid ID numbers, real-looking phones.

The demo is written as a lender's CSV with Chinese headers and imported through the normal import, so the
demo is also an import test.
"""

from __future__ import annotations

import csv
import random
from datetime import date, datetime, timedelta
from pathlib import Path

import phonenumbers
from faker import Faker
from sqlalchemy import select
from sqlalchemy.orm import Session

from arrears.models import AppUser, Portfolio
from arrears.portfolios import service

DEMO_PORTFOLIO = "demo"
DEMO_CREDITOR = "示例消费金融有限公司"
DEMO_CREDITOR_PHONE = "400-800-1234"
DEMO_CREDITOR_ADDRESS = "上海市浦东新区世纪大道100号20层"

HEADERS = [
    "借据号",
    "客户类型",
    "姓名",
    "身份证号",
    "手机号",
    "固定电话",
    "邮箱",
    "地址",
    "单位名称",
    "月收入",
    "产品类型",
    "合同金额",
    "年利率",
    "罚息利率",
    "放款日期",
    "到期日",
    "期数",
    "每期金额",
    "首期还款日",
    "本金",
    "利息",
    "罚息",
    "费用",
    "逾期金额",
    "紧急联系人",
    "紧急联系人关系",
    "紧急联系人电话",
    "特殊标记",
    "标记原因",
    "还款账号",
    "开户行",
]
PRODUCTS = [("信用卡", 35), ("消费贷", 30), ("分期", 20), ("先享后付", 10), ("应收账款", 5)]
RELATIONS = ["配偶", "父亲", "母亲", "兄弟", "姐妹", "朋友", "同事", "担保人"]
AREA_CODES = ["010", "020", "021", "022", "023", "024", "025", "027", "028", "029"]
MOBILE_PREFIXES = [
    "130",
    "131",
    "132",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "157",
    "158",
    "159",
    "170",
    "176",
    "177",
    "180",
    "181",
    "182",
    "185",
    "186",
    "187",
    "188",
    "189",
    "191",
    "198",
    "199",
]
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
# UnionPay debit card BINs (issuer prefix, card length) of large banks
CARD_BINS = [
    ("622202", 19, "中国工商银行"),
    ("622848", 19, "中国农业银行"),
    ("622700", 19, "中国建设银行"),
    ("622262", 19, "交通银行"),
    ("622588", 16, "招商银行"),
    ("622609", 16, "中国民生银行"),
]


def _uscc(rng: random.Random) -> str:
    from stdnum.cn import uscc

    body = "91" + "110105" + "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
    return body + uscc.calc_check_digit(body)


def _bank_card(rng: random.Random) -> tuple[str, str]:
    """A plausible repayment card (passes the Luhn check), sometimes written in groups of four, and its bank."""
    from stdnum import luhn

    prefix, length, bank = rng.choice(CARD_BINS)
    body = prefix + "".join(str(rng.randrange(10)) for _ in range(length - len(prefix) - 1))
    number = body + luhn.calc_check_digit(body)
    if rng.random() < 0.2:
        number = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    return number, bank


def _mobile(rng: random.Random) -> str:
    return rng.choice(MOBILE_PREFIXES) + f"{rng.randrange(10**8):08d}"


def _landline(rng: random.Random) -> str:
    """A landline in a number range phonenumbers knows as allocated (the import checks against the same data).

    Not every 8-digit local number is in use: Shanghai's 021-8007 xxxx, for one, is outside the ranges the
    numbering plan assigns, so a number is drawn again until it is valid.
    """
    while True:
        area = rng.choice(AREA_CODES)
        local = f"{rng.randrange(2, 9)}{rng.randrange(10**7):07d}"
        if phonenumbers.is_valid_number(phonenumbers.parse(area + local, "CN")):
            return f"{area}-{local}"


def _money(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def generate_rows(*, accounts: int, seed: int, as_of: date) -> list[list[str]]:
    """Rows of a demo account file; deterministic for a seed and date."""
    rng = random.Random(seed)
    # bank cards draw from their own stream, so the rest of the file stays what it was for a seed
    card_rng = random.Random(seed * 7919 + 1)
    fake = Faker("zh_CN")
    fake.seed_instance(seed)
    rows: list[list[str]] = []
    debtor: dict[str, str] = {}
    n = 0
    while n < accounts:
        # about one debtor in six has a second account
        same_debtor = bool(debtor) and debtor["kind"] == "个人" and rng.random() < 0.16
        product = rng.choices([p for p, _ in PRODUCTS], weights=[w for _, w in PRODUCTS])[0]
        if not same_debtor or product == "应收账款":
            company = product == "应收账款"
            debtor = {
                "kind": "企业" if company else "个人",
                "name": fake.company() if company else fake.name(),
                "id": _uscc(rng) if company else fake.ssn(min_age=20, max_age=70),  # type: ignore[call-arg]
                "mobile": _mobile(rng),
                "landline": _landline(rng) if rng.random() < 0.3 else "",
                "email": fake.email() if rng.random() < 0.4 else "",
                "address": fake.address().split(" ")[0],
                "employer": fake.company() if not company and rng.random() < 0.7 else "",
                "income": _money(rng.randrange(3000, 30000) * 100) if not company else "",
            }
        dpd = rng.choice([rng.randint(-5, 30), rng.randint(-5, 90), rng.randint(-5, 400)])
        due = as_of - timedelta(days=dpd)
        principal = rng.randrange(500, 80000) * 100 + rng.randrange(100)
        orig_principal = principal + rng.randrange(0, 20000) * 100
        interest = principal * rng.randrange(0, 12) // 100
        penalty = principal * rng.randrange(0, 6) // 100 if dpd > 0 else 0
        fees = rng.choice([0, 0, 5000, 10000, 2000])
        origination = due - timedelta(days=rng.randint(60, 900))
        count = amount = first = ""
        if product in ("分期", "先享后付"):
            terms = rng.choice([3, 6, 12, 24]) if product == "分期" else rng.choice([3, 6])
            first_date = origination + timedelta(days=30)
            count, first = str(terms), first_date.isoformat()
            amount = _money(max(100, orig_principal // terms))
        rate = rng.choice(["24%", "18%", "15.4%", "0.12", "7.2%"])
        hold, hold_reason = "", ""
        r = rng.random()
        if r < 0.01:
            hold, hold_reason = "异议", "债务人称已还款，待核实"
        elif r < 0.02:
            hold, hold_reason = "停催", "债务人书面要求停止联系"
        has_ec = product != "应收账款" and rng.random() < 0.8
        card, bank = _bank_card(card_rng) if card_rng.random() < 0.85 else ("", "")
        n += 1
        rows.append(
            [
                f"DEMO{n:07d}",
                debtor["kind"],
                debtor["name"],
                debtor["id"],
                debtor["mobile"],
                debtor["landline"],
                debtor["email"],
                debtor["address"],
                debtor["employer"],
                debtor["income"],
                product,
                _money(orig_principal),
                rate,
                "36%" if product != "应收账款" else "",
                origination.isoformat(),
                due.isoformat(),
                count,
                amount,
                first,
                _money(principal),
                _money(interest),
                _money(penalty),
                _money(fees),
                _money(principal + interest + penalty + fees),
                fake.name() if has_ec else "",
                rng.choice(RELATIONS) if has_ec else "",
                _mobile(rng) if has_ec else "",
                hold,
                hold_reason,
                card,
                bank,
            ]
        )
    return rows


def write_demo_file(path: Path, *, accounts: int, seed: int, as_of: date) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADERS)
        w.writerows(generate_rows(accounts=accounts, seed=seed, as_of=as_of))
    return path


DEMO_USERS = [
    ("collector1", "催收员 王芳", "collector"),
    ("collector2", "催收员 李强", "collector"),
    ("supervisor", "组长 陈静", "supervisor"),
    ("compliance", "合规专员 赵敏", "compliance"),
    ("admin", "管理员", "admin"),
    ("agency1", "外包机构 用户", "agency"),
    ("auditor", "只读审计", "read_only"),
]


def ensure_demo_portfolio(session: Session) -> Portfolio:
    """The demo creditor, portfolio and one user per role (idempotent)."""
    portfolio = session.scalar(select(Portfolio).where(Portfolio.name == DEMO_PORTFOLIO))
    if portfolio is None:
        portfolio = service.create_portfolio(session, name=DEMO_PORTFOLIO, creditor=DEMO_CREDITOR)
    # CN-8: written notices carry the institution's contact details
    portfolio.creditor.phone = portfolio.creditor.phone or DEMO_CREDITOR_PHONE
    portfolio.creditor.address = portfolio.creditor.address or DEMO_CREDITOR_ADDRESS
    for username, display, role in DEMO_USERS:
        if session.scalar(select(AppUser).where(AppUser.username == username)) is None:
            session.add(AppUser(username=username, display_name=display, role=role))
    session.flush()
    return portfolio


DEMO_PASSWORD = "demo1234"  # printed with the address; demo databases only
# Demo collectors share the early and late queues; the supervisor works the legal queue.
DEMO_COLLECTORS = [
    ("collector1", ["early", "late"], 100_000),
    ("collector2", ["early", "late"], 100_000),
    ("supervisor", ["legal"], 100_000),
]


def set_demo_passwords(session: Session) -> None:
    """Give every demo user the demo password (only users without a password yet)."""
    from arrears.users.service import hash_password

    digest = hash_password(DEMO_PASSWORD)
    for username, _display, _role in DEMO_USERS:
        user = session.scalar(select(AppUser).where(AppUser.username == username))
        if user is not None and not user.password_hash:
            user.password_hash = digest
    session.flush()


def prepare_desk(session: Session, *, as_of: date, now: datetime) -> str:
    """Give the demo collectors their queues and run the day's strategy, so work queues are filled.

    Returns a one-line summary of the run.
    """
    from arrears.strategy import queue_service, run

    for username, queues, cap in DEMO_COLLECTORS:
        queue_service.set_collector(session, user=username, queues=queues, cap=cap)
    session.flush()
    report = run.run_portfolio(session, portfolio=DEMO_PORTFOLIO, as_of=as_of, now=now, requested_by="demo")
    counts = ", ".join(f"{k} {v}" for k, v in sorted(report.allocation_counts.items()))
    return (
        f"daily run 每日批处理 {as_of}: {report.outcome.work_items} work items (calls, visits, legal referrals), "
        f"{report.outcome.outbox} messages planned; allocation 分案: {counts}"
    )


DEMO_OUTCOMES = [  # (outcome, weight): what a week of calls to an overdue portfolio looks like
    ("no_answer", 34),
    ("right_party", 22),
    ("voicemail", 10),
    ("busy", 8),
    ("promise", 14),
    ("callback_requested", 6),
    ("refused", 3),
    ("wrong_number", 3),
]


def record_history(session: Session, *, as_of: date, seed: int = 2026, cases: int = 300) -> str:
    """A week of collection work before ``as_of`` on a sample of demo cases, through the real services.

    Calls pass the compliance gate at their own time (a few late-evening ones are blocked and recorded as
    blocked), promises are recorded with the calls that took them, and some promised amounts arrive as
    payments, so the desk, the supervisor's figures and the compliance views have something to show on the
    first day. Recorded once: a portfolio that already has contact attempts is left alone.
    """
    from arrears import clock
    from arrears.arrangements import service as arrangements_service
    from arrears.compliance.schemas import Outcome
    from arrears.contacts import service as contacts_service
    from arrears.enums import Channel
    from arrears.errors import ArrearsError
    from arrears.ledger import service as ledger_service
    from arrears.models import Account, Case, ContactAttempt, ContactPoint

    portfolio = session.scalar(select(Portfolio).where(Portfolio.name == DEMO_PORTFOLIO))
    if portfolio is None:
        return "history 历史记录: no demo portfolio"
    if session.scalar(
        select(ContactAttempt.id)
        .join(Case, Case.id == ContactAttempt.case_id)
        .where(Case.portfolio_id == portfolio.id)
    ):
        return "history 历史记录: already recorded"
    rng = random.Random(seed)
    agents = [
        u.id
        for u in session.scalars(select(AppUser).where(AppUser.username.in_(("collector1", "collector2"))))
    ]
    rows = session.execute(
        select(Case.id, ContactPoint.id, Account.id, Account.currency, Account.overdue_amount_minor)
        .join(ContactPoint, ContactPoint.debtor_id == Case.debtor_id)
        .join(Account, Account.case_id == Case.id)
        .where(
            Case.portfolio_id == portfolio.id,
            ContactPoint.owner_relation == "self",
            ContactPoint.kind == "mobile",
            Account.overdue_amount_minor > 0,
        )
        .order_by(Case.id, Account.id)
    ).all()
    first: dict[int, tuple[int, int, str, int]] = {}
    for case_id, point_id, account_id, currency, balance in rows:
        first.setdefault(case_id, (point_id, account_id, currency, balance))
    sample = sorted(rng.sample(sorted(first), min(cases, len(first))))
    zone = portfolio.timezone
    outcomes, weights = zip(*DEMO_OUTCOMES, strict=True)
    calls = blocked = promised = paid = 0
    for n, case_id in enumerate(sample):
        point_id, account_id, currency, balance = first[case_id]
        agent = agents[n % len(agents)] if agents else None
        for days_ago in sorted(rng.sample(range(1, 8), rng.randint(1, 3)), reverse=True):
            day = as_of - timedelta(days=days_ago)
            late = rng.random() < 0.03
            hour, minute = (22, rng.randint(5, 50)) if late else (rng.randint(9, 19), rng.randint(0, 59))
            local = datetime(day.year, day.month, day.day, hour, minute, tzinfo=clock.zone_info(zone))
            outcome = rng.choices(outcomes, weights)[0]
            recorded = contacts_service.record_attempt(
                session,
                case_id=case_id,
                contact_point_id=point_id,
                channel=Channel.CALL,
                started_at=clock.as_utc(local),
                ended_at=clock.as_utc(local + timedelta(minutes=rng.randint(1, 6))),
                outcome=Outcome(outcome),
                collector="in_house",
                agent_id=agent,
            )
            calls += 1
            if recorded.blocked:
                blocked += 1
                continue
            if outcome != "promise":
                continue
            amount = max(balance // rng.choice((2, 3, 4)) // 100 * 100, 100)
            promised_on = day + timedelta(days=rng.randint(1, 7))
            arrangements_service.record_promise(
                session,
                account_id=account_id,
                amount_minor=amount,
                promised_on=promised_on,
                made_on=day,
                channel=Channel.CALL,
                taken_by_id=agent,
            )
            promised += 1
            # opening balances are as of the import, so money arrives on the demo's day itself
            if promised_on <= as_of and rng.random() < (0.65 if promised_on == as_of else 0.3):
                share = amount if rng.random() < 0.7 else amount // 2
                try:
                    ledger_service.post_payment(
                        session,
                        portfolio_id=portfolio.id,
                        amount_minor=share,
                        received_on=as_of,
                        reference=f"DEMO-{case_id}-{promised_on:%m%d}",
                        account_id=account_id,
                        collector="demo",
                        now=clock.as_utc(
                            datetime(as_of.year, as_of.month, as_of.day, 9, 30, tzinfo=clock.zone_info(zone))
                        ),
                    )
                    paid += 1
                except ArrearsError:
                    pass  # an account the ledger will not take a payment on stays unpaid
    session.flush()
    return (
        f"history 历史记录: {calls} calls on {len(sample)} cases ({blocked} blocked by the gate), "
        f"{promised} promises, {paid} payments"
    )


DEMO_AGENCY = "示范外包催收公司"
DEMO_PLACED_CASES = 5


def place_demo_cases(session: Session, *, as_of: date) -> list[int]:
    """A listed demo agency with the demo agency user linked to it, and a few cases placed with it for 90
    days (the agency user sees only those: PI-4). Idempotent; returns the placed case ids."""
    from arrears.agencies import service as agencies_service
    from arrears.models import Agency, Case, Placement

    agency = session.scalar(select(Agency).where(Agency.name == DEMO_AGENCY))
    if agency is None:
        agency = agencies_service.create_agency(session, name=DEMO_AGENCY, listed=True, commission_bps=1500)
    user = session.scalar(select(AppUser).where(AppUser.username == "agency1"))
    if user is not None:
        user.agency_id = agency.id
    placed = list(session.scalars(select(Placement.case_id).where(Placement.agency_id == agency.id)))
    if placed:
        return placed
    portfolio = session.scalar(select(Portfolio).where(Portfolio.name == DEMO_PORTFOLIO))
    if portfolio is None:
        return []
    rule = agencies_service.PlacementRule(max_cases=DEMO_PLACED_CASES)
    case_ids = agencies_service.select_cases(session, portfolio_id=portfolio.id, rule=rule, as_of=as_of)
    if not case_ids:  # pragma: no cover - a demo portfolio always has open cases
        case_ids = list(session.scalars(select(Case.id).where(Case.portfolio_id == portfolio.id).limit(5)))
    rows = agencies_service.place_cases(
        session,
        agency_id=agency.id,
        case_ids=case_ids,
        placed_on=as_of,
        expires_on=as_of + timedelta(days=90),
    )
    session.flush()
    return [r.case_id for r in rows]


def demo_api_token(session: Session, *, now: datetime) -> str:
    """A fresh API token for the demo administrator (to try the API from /docs, "Authorize")."""
    from arrears.users import service as users_service

    return users_service.create_token(
        session, username="admin", name="demo", at=now, expires_at=now + timedelta(days=30)
    ).token
