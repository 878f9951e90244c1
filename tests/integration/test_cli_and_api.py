"""The CLI and the API as a user meets them: real processes, real files, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from api_clients import api_client
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

import arrears
from arrears import db
from arrears.models import Account, Debtor
from arrears.portfolios import service

ARREARS = [sys.executable, "-m", "arrears.cli"]


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ARREARS_DATABASE_URL": f"sqlite:///{cwd / 'cli.db'}", "COLUMNS": "200"}
    # run the package under test even when PYTHONPATH is relative (the subprocess starts in cwd)
    env["PYTHONPATH"] = os.pathsep.join([str(Path(arrears.__file__).parents[1]), env.get("PYTHONPATH", "")])
    return subprocess.run([*ARREARS, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_bad_input_gets_one_clear_line_and_no_traceback(tmp_path: Path) -> None:
    missing = run_cli(["import", "accounts", "nope.csv", "--portfolio", "x"], tmp_path)
    assert missing.returncode == 2
    assert "Traceback" not in missing.stderr + missing.stdout
    assert "portfolio_not_found" in missing.stderr

    assert run_cli(["portfolio", "create", "p", "--creditor", "银行"], tmp_path).returncode == 0
    bad_mapping = tmp_path / "map.toml"
    bad_mapping.write_text('[columns]\n"客户" = "nonsense"\n', encoding="utf-8")
    (tmp_path / "a.csv").write_text("借据号,姓名\nA,张三\n", encoding="utf-8")
    r = run_cli(["import", "accounts", "a.csv", "--mapping", str(bad_mapping)], tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "map.toml" in r.stderr and "nonsense" in r.stderr


def test_unterminated_quote_is_one_line_naming_the_row(tmp_path: Path) -> None:
    assert run_cli(["portfolio", "create", "p", "--creditor", "银行"], tmp_path).returncode == 0
    (tmp_path / "q.csv").write_text(
        "借据号,姓名,产品类型,逾期金额,到期日\n"
        "A1,张三,信用卡,100,2025-06-01\n"
        'A2,"李四,信用卡,100,2025-06-01\n'
        "A3,王五,信用卡,100,2025-06-01\n",
        encoding="utf-8",
    )
    r = run_cli(["import", "accounts", "q.csv"], tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr + r.stdout
    assert "第 3 行（文件第 3 行）引号未闭合" in r.stderr and "row 3 (line 3): unterminated quote" in r.stderr


def test_rejected_import_writes_a_report_naming_the_bad_row(tmp_path: Path) -> None:
    assert run_cli(["portfolio", "create", "p", "--creditor", "银行"], tmp_path).returncode == 0
    (tmp_path / "a.csv").write_text(
        "借据号,姓名,身份证号,产品类型,逾期金额,到期日\n"
        "A1,张三,11010519491231002X,信用卡,100,2025-06-01\n"
        "A2,李四,110105194912310021,信用卡,100,2025-06-01\n",
        encoding="utf-8",
    )
    r = run_cli(["import", "accounts", "a.csv", "--report", "problems.xlsx"], tmp_path)
    assert r.returncode == 1
    assert "rejected" in r.stdout
    from openpyxl import load_workbook

    ws = load_workbook(tmp_path / "problems.xlsx").active
    assert ws is not None
    rows = list(ws.iter_rows(values_only=True))
    assert rows[1][0] == "3" and rows[1][1] == "身份证号" and rows[1][-1] == "id_check_digit"
    ok = run_cli(["import", "accounts", "a.csv", "--dry-run"], tmp_path)
    assert ok.returncode == 1  # still rejected: nothing changes


def test_a_field_the_product_needs_is_named_when_the_file_has_no_column_for_it(tmp_path: Path) -> None:
    assert run_cli(["portfolio", "create", "p", "--creditor", "银行"], tmp_path).returncode == 0
    (tmp_path / "a.csv").write_text(
        "借据号,姓名,身份证号,产品类型,逾期金额,到期日\nA1,张三,11010519491231002X,消费贷,100,2025-06-01\n",
        encoding="utf-8",
    )
    r = run_cli(["import", "accounts", "a.csv"], tmp_path)
    assert r.returncode == 1 and "rejected" in r.stdout
    line = next(x for x in r.stdout.splitlines() if "this product needs this field" in x)
    assert "放款日期 / origination date" in line


def test_demo_builds_a_portfolio_through_the_import(tmp_path: Path) -> None:
    r = run_cli(["demo", "--accounts", "300", "--no-serve", "--as-of", "2026-01-15"], tmp_path)
    assert r.returncode == 0, r.stderr
    engine = db.make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    with Session(engine) as s:
        assert len(s.scalars(select(Account)).all()) == 300
        assert len(s.scalars(select(Debtor)).all()) < 300  # some debtors hold two accounts
    again = run_cli(["demo", "--accounts", "300", "--no-serve", "--as-of", "2026-01-15"], tmp_path)
    assert again.returncode == 0
    assert "300" in again.stdout and "unchanged" in again.stdout
    engine.dispose()


def test_api_reads_are_masked_and_errors_are_json(engine: Engine, tmp_path: Path) -> None:
    with db.session_scope(engine) as s:
        name = f"api-{engine.dialect.name}-{os.getpid()}"
        service.create_portfolio(s, name=name, creditor=f"c-{name}")
        path = tmp_path / "a.csv"
        path.write_text(
            "借据号,姓名,身份证号,手机号,产品类型,逾期金额,到期日\n"
            f"{name}-1,赵六,110105196001010017,13812345678,信用卡,100.50,2025-06-01\n",
            encoding="utf-8",
        )
        report = service.import_accounts(s, path=path, portfolio_name=name)
        assert report.status == "applied"
        account = s.scalar(select(Account).where(Account.external_ref == f"{name}-1"))
        assert account is not None
        account_id, debtor_id = account.id, account.debtor_id
    client = api_client(engine)
    assert client.get("/healthz").json()["status"] == "ok"
    assert name in [p["name"] for p in client.get("/api/v1/portfolios").json()]
    acc = client.get(f"/api/v1/accounts/{account_id}").json()
    assert acc["balance"]["total_minor"] == 10050
    debtor = client.get(f"/api/v1/debtors/{debtor_id}").json()
    assert debtor["national_id_masked"] == "110105********0017"
    assert "13812345678" not in str(debtor)
    missing = client.get("/api/v1/accounts/987654321")
    assert missing.status_code == 404 and missing.json()["code"] == "account_not_found"


def test_migrations_match_the_models(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from arrears.models import Base

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
