"""The ledger through its doors: the REST API (idempotent payments, reversal, statements) and the CLI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import ledger_builders as b
import pytest
from api_clients import api_client
from sqlalchemy import Engine

from arrears import db
from arrears.ledger import service, statement


def _setup(engine: Engine) -> tuple[int, int, str]:
    with db.session_scope(engine) as s:
        p = b.portfolio(s)
        d, c = b.debtor(s, p)
        a = b.account(s, p, d, c, principal=100_000, interest=2_000, penalty=500, costs=300)
        return p.id, a.id, a.external_ref


def test_api_payment_is_posted_once_per_idempotency_key_and_reversal_restores_balances(
    engine: Engine,
) -> None:
    pid, aid, ref = _setup(engine)
    client = api_client(engine)
    body = {"portfolio_id": pid, "account_ref": ref, "amount_minor": 1_300, "received_on": "2025-06-01"}
    body["reference"] = f"API-{uuid.uuid4().hex[:8]}"
    missing = client.post("/api/v1/payments", json=body)
    assert missing.status_code == 422
    key = {"Idempotency-Key": uuid.uuid4().hex}
    first = client.post("/api/v1/payments", json=body, headers=key)
    assert first.status_code == 201, first.text
    again = client.post("/api/v1/payments", json=body, headers=key)
    assert again.status_code == 201 and again.json() == first.json()
    other = client.post("/api/v1/payments", json={**body, "amount_minor": 5}, headers=key)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    splits = {(s["component"], s["amount_minor"], s["rule_id"]) for s in first.json()["splits"]}
    assert splits == {("costs", -300, "CN-28"), ("interest", -800, "CN-28"), ("penalty", -200, "CN-28")}

    statement_after = client.get(f"/api/v1/accounts/{aid}/statement", params={"as_of": "2025-06-01"}).json()
    assert statement_after["closing"]["costs"] == 0 and statement_after["closing_total_minor"] == 101_500
    payment_id = first.json()["id"]
    undone = client.post(
        f"/api/v1/payments/{payment_id}/reverse", json={"reason": "bounced", "reversed_on": "2025-06-03"}
    )
    assert undone.status_code == 200 and undone.json()["status"] == "reversed"
    twice = client.post(f"/api/v1/payments/{payment_id}/reverse", json={"reason": "bounced"})
    assert twice.status_code == 409 and twice.json()["code"] == "already_reversed"
    st = client.get(f"/api/v1/accounts/{aid}/statement", params={"as_of": "2025-06-30"}).json()
    assert st["closing"] == {
        "costs": 300,
        "interest": 2_000,
        "penalty": 500,
        "fees": 0,
        "principal": 100_000,
        "credit": 0,
    }
    csv_text = client.get(
        f"/api/v1/accounts/{aid}/statement", params={"as_of": "2025-06-30", "format": "csv"}
    )
    assert csv_text.headers["content-type"].startswith("text/csv")
    assert "冲正" in csv_text.content.decode("utf-8-sig")
    pdf = client.get(f"/api/v1/accounts/{aid}/statement", params={"as_of": "2025-06-30", "format": "pdf"})
    assert pdf.headers["content-type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert client.get(f"/api/v1/portfolios/{pid}/ledger/verify").json() == []
    assert (
        client.get("/api/v1/accounts/999999999/statement", params={"as_of": "2025-06-30"}).status_code == 404
    )


@pytest.mark.skipif(shutil.which("pdftoppm") is None, reason="poppler-utils not installed")
def test_the_statement_pdf_embeds_the_cjk_font_and_renders_chinese(session: object, tmp_path: Path) -> None:
    from sqlalchemy.orm import Session

    assert isinstance(session, Session)
    p = b.portfolio(session)
    d, c = b.debtor(session, p)
    a = b.account(session, p, d, c, ref="借据-甲001", principal=500_000, interest=12_345, fees=1_000)
    service.post_payment(
        session,
        portfolio_id=p.id,
        account_id=a.id,
        amount_minor=20_000,
        received_on=datetime(2025, 6, 1).date(),
        reference="收据-0001",
        now=datetime(2025, 6, 1, tzinfo=UTC),
    )
    st = statement.statement(session, account_id=a.id, as_of=datetime(2025, 6, 30).date())
    pdf = tmp_path / "statement.pdf"
    pdf.write_bytes(statement.statement_pdf(st))
    fonts = subprocess.run(["pdffonts", str(pdf)], capture_output=True, text=True, check=True).stdout
    assert "yes" in fonts.split("\n")[2]  # the font is embedded
    text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    for word in ("账户对账单", "期初余额", "期末余额", "本金", "利息", "收据-0001", "借据-甲001"):
        assert word in text
    subprocess.run(
        ["pdftoppm", "-r", "60", "-png", "-singlefile", str(pdf), str(tmp_path / "page")], check=True
    )
    from PIL import Image

    image = Image.open(tmp_path / "page.png").convert("L")
    dark = sum(image.histogram()[:128])
    assert dark > 2_000, "the rendered page is blank"


def test_cli_post_reverse_accrue_statement_and_payment_file(tmp_path: Path) -> None:
    import arrears

    env = {
        **os.environ,
        "ARREARS_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "COLUMNS": "200",
        "PYTHONPATH": str(Path(arrears.__file__).resolve().parents[1]),
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "arrears.cli", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    engine = db.make_engine(env["ARREARS_DATABASE_URL"])
    db.upgrade(engine)
    with db.session_scope(engine) as s:
        p = b.portfolio(s)
        d, c = b.debtor(s, p)
        b.account(s, p, d, c, ref="C-1", principal=10_000, interest=100, rate_ppm=100_000)
        name = p.name
    engine.dispose()
    posted = run(
        "payment",
        "post",
        "--account",
        "C-1",
        "--amount",
        "50.00",
        "--receipt",
        "RC-1",
        "--on",
        "2025-06-01",
        "--portfolio",
        name,
    )
    assert posted.returncode == 0, posted.stderr
    assert "CN-28" in posted.stdout and "RC-1" in posted.stdout
    dup = run(
        "payment",
        "post",
        "--account",
        "C-1",
        "--amount",
        "1",
        "--receipt",
        "RC-1",
        "--on",
        "2025-06-01",
        "--portfolio",
        name,
    )
    assert dup.returncode == 2 and "duplicate_reference" in dup.stderr and "Traceback" not in dup.stderr
    assert run("accrue", "--portfolio", name, "--as-of", "2025-06-02").returncode == 0
    again = run("accrue", "--portfolio", name, "--as-of", "2025-06-02")
    assert "already done" in again.stdout
    (tmp_path / "bank.csv").write_text(
        "借据号,还款金额,还款日期,流水号\nC-1,10,2025-06-03,B-1\nC-1,x,2025-06-03,B-2\n", encoding="utf-8"
    )
    bad = run("import", "payments", "bank.csv", "--portfolio", name, "--report", "problems.csv")
    assert bad.returncode == 1 and "bad_amount" in (tmp_path / "problems.csv").read_text(encoding="utf-8-sig")
    (tmp_path / "bank.csv").write_text(
        "借据号,还款金额,还款日期,流水号\nC-1,10,2025-06-03,B-1\n", encoding="utf-8"
    )
    assert run("import", "payments", "bank.csv", "--portfolio", name).returncode == 0
    reversed_ = run("payment", "reverse", "1", "--reason", "bounced", "--on", "2025-06-04")
    assert reversed_.returncode == 0, reversed_.stderr
    out = run("statement", "C-1", "--as-of", "2025-06-30", "--format", "csv", "--out", "s.csv")
    assert out.returncode == 0, out.stderr
    text = (tmp_path / "s.csv").read_text(encoding="utf-8-sig")
    assert "B-1" in text and "RC-1" in text and "冲正" in text
    assert (
        run("statement", "C-1", "--as-of", "2025-06-30", "--format", "pdf", "--out", "s.pdf").returncode == 0
    )
    assert (tmp_path / "s.pdf").read_bytes().startswith(b"%PDF")
    assert run("ledger", "verify", "--portfolio", name).returncode == 0
