"""The daily run's REST doors and `arrears run` as a user meets them."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

from api_clients import api_client
from sqlalchemy import Engine
from strategy_builders import DAY0, Portfolio, Row, committed_collectors, import_portfolio

from arrears import db


def test_runs_explain_work_queue_claim_and_complete_over_the_api(engine: Engine, tmp_path: Path) -> None:
    with db.session_scope(engine) as s:
        p = import_portfolio(
            s, tmp_path, [Row("a", DAY0 - timedelta(days=4)), Row("b", DAY0 - timedelta(days=30))], as_of=DAY0
        )
    with committed_collectors(engine, 1) as (collector,):
        _walk_through(engine, p, collector)


def _walk_through(engine: Engine, p: Portfolio, collector: int) -> None:
    client = api_client(engine)
    dry = client.post("/api/v1/runs", json={"portfolio": p.name, "as_of": DAY0.isoformat(), "dry_run": True})
    assert dry.status_code == 201 and dry.json()["id"] is None and dry.json()["status"] == "dry_run"
    started = client.post("/api/v1/runs", json={"portfolio": p.name, "as_of": DAY0.isoformat()})
    assert started.status_code == 201, started.text
    run = started.json()
    assert run["status"] == "succeeded" and run["accounts_evaluated"] == 2
    assert run["stage_counts"] == {"firm": 1, "intensive": 1}
    assert run["blocked_by_rule"] == {"CN-3": 1}
    assert [ph["name"] for ph in run["phases"]][:6] == [
        "lock",
        "release_holds",
        "recall_placements",
        "accrue",
        "commitments",
        "limitation",
    ]
    again = client.post("/api/v1/runs", json={"portfolio": p.name, "as_of": DAY0.isoformat()}).json()
    assert again["changes"] == 0
    assert client.get(f"/api/v1/runs/{run['id']}").json()["work_items_written"] == run["work_items_written"]
    assert client.get("/api/v1/runs/987654321").json()["code"] == "run_not_found"

    why = client.get(f"/api/v1/accounts/{p.ids['a']}/explain", params={"as_of": DAY0.isoformat()}).json()
    assert why["source"] == "recorded" and why["stage"] == "firm"
    assert [a["action_key"] for a in why["actions"]] == ["firm.call"]

    at = "2026-03-02T10:00:00+08:00"
    queue = client.get("/api/v1/work-queue", params={"collector": str(collector), "at": at}).json()
    assert queue["next_item_id"] == queue["items"][0]["id"]
    assert all(i["may_contact_now"] for i in queue["items"])
    assert queue["idle"] is None
    dawn = client.get(
        "/api/v1/work-queue", params={"collector": str(collector), "at": "2026-03-02T07:00:00+08:00"}
    ).json()
    assert dawn["next_item_id"] is None and dawn["idle"]["waiting"] == len(dawn["items"]) > 0
    assert dawn["idle"]["resumes_at"] == min(i["window_start_at"] for i in dawn["items"])
    item = queue["next_item_id"]
    night = client.post(
        f"/api/v1/work-items/{item}/claim",
        json={"collector_id": collector, "at": "2026-03-02T23:00:00+08:00"},
    )
    assert night.status_code == 409 and night.json()["code"] == "outside_window"
    claimed = client.post(f"/api/v1/work-items/{item}/claim", json={"collector_id": collector, "at": at})
    assert claimed.status_code == 200 and claimed.json()["status"] == "claimed"
    done = client.post(
        f"/api/v1/work-items/{item}/complete",
        json={"collector_id": collector, "outcome": "no_answer", "at": at},
    )
    assert done.json()["status"] == "done"
    moved = client.post(
        "/api/v1/allocations",
        json={
            "case_ids": [queue["items"][0]["case_id"]],
            "collector": str(collector),
            "reason": "r",
            "actor": "lead",
        },
    )
    assert moved.status_code == 201 and moved.json() == []  # already with that collector: nothing to record
    history = client.get(f"/api/v1/cases/{queue['items'][0]['case_id']}/allocations").json()
    assert history[0]["outcome"] == "assigned"


def test_cli_run_dry_run_and_a_second_run_that_changes_nothing(tmp_path: Path) -> None:
    src = Path(__file__).resolve().parents[3] / "src"
    env = {
        **os.environ,
        "ARREARS_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "COLUMNS": "200",
        "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "arrears.cli", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    assert cli("demo", "--accounts", "120", "--no-serve", "--as-of", "2026-01-15").returncode == 0
    dry = cli("run", "--as-of", "2026-01-15", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout and "accounts evaluated" in dry.stdout
    first = cli("run", "--as-of", "2026-01-15")
    assert first.returncode == 0 and "succeeded" in first.stdout
    second = cli("run", "--as-of", "2026-01-15")
    assert second.returncode == 0
    changes = next(line for line in second.stdout.splitlines() if "changes" in line)
    assert changes.split("│")[2].strip() == "0"
    back = cli("run", "--as-of", "2026-01-14")
    assert back.returncode == 2 and "run_date_passed" in back.stderr and "Traceback" not in back.stderr
    explain = cli("explain", "1", "--as-of", "2026-01-15", "--json")
    assert explain.returncode == 0 and '"source": "recorded"' in explain.stdout
