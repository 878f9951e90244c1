"""The evidence bundle's doors: ``GET /api/v1/cases/{id}/evidence-bundle`` (SQLite and PostgreSQL), the
stored bundles, legal cost reversal over the API, and ``arrears legal bundle`` / ``bundle-check``."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_clients import api_client
from bundle_builders import Demo, demo_case
from casework_builders import make_book
from sqlalchemy import Engine
from test_casework_doors import run_cli

from arrears import db
from arrears.config import get_settings
from arrears.legal import bundle


@pytest.fixture
def committed_demo(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Demo]:
    docs = tmp_path / "documents"
    monkeypatch.setenv("ARREARS_DOCUMENT_DIR", str(docs))
    get_settings.cache_clear()
    with db.session_scope(engine) as s:
        demo = demo_case(s, make_book(s, tmp_path), docs)
    yield demo
    get_settings.cache_clear()


def test_rest_evidence_bundle_is_a_zip_that_checks_and_is_stored(
    engine: Engine, committed_demo: Demo
) -> None:
    demo = committed_demo
    api = api_client(engine)
    compliance = demo.user_ids["compliance"]
    r = api.get(
        f"/api/v1/cases/{demo.case_id}/evidence-bundle",
        params={"as_of": demo.as_of.isoformat(), "user_id": compliance},
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["x-chain-status"] == "ok"
    assert r.headers["content-disposition"].startswith(f'attachment; filename="evidence-C-{demo.case_id}-')
    check = bundle.check_bundle(r.content)
    assert check.ok and check.chain_ok is True
    with zipfile.ZipFile(io.BytesIO(r.content)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
    assert manifest["case"]["id"] == demo.case_id and manifest["as_of"] == demo.as_of.isoformat()

    listed = api.get(f"/api/v1/cases/{demo.case_id}/evidence-bundles").json()
    assert [b["id"] for b in listed] == [int(r.headers["x-evidence-bundle-id"])]
    assert listed[0]["sha256"] == r.headers["x-content-sha256"] and listed[0]["generated_by_id"] == compliance
    stored = api.get(f"/api/v1/evidence-bundles/{listed[0]['id']}/content", params={"user_id": compliance})
    assert stored.status_code == 200 and stored.content == r.content

    missing = api.get("/api/v1/cases/999999999/evidence-bundle")
    assert missing.status_code == 404 and missing.json()["code"] == "case_not_found"
    bad_date = api.get(f"/api/v1/cases/{demo.case_id}/evidence-bundle", params={"as_of": "yesterday"})
    assert bad_date.status_code == 422


def test_rest_legal_cost_correction_reverses_the_posting(engine: Engine, committed_demo: Demo) -> None:
    demo = committed_demo
    api = api_client(engine)
    with zipfile.ZipFile(
        io.BytesIO(
            api.get(
                f"/api/v1/cases/{demo.case_id}/evidence-bundle", params={"as_of": demo.as_of.isoformat()}
            ).content
        )
    ) as zf:
        legal_case_id = json.loads(zf.read("manifest.json"))["case"]["legal_case_ids"][0]
    case = api.get(f"/api/v1/legal-cases/{legal_case_id}").json()
    [cost] = case["costs"]
    assert cost["posted"] and cost["posting_id"] is not None
    fixed = api.post(
        f"/api/v1/legal-costs/{cost['id']}/correct",
        json={"costs_minor": 60000, "corrected_on": demo.as_of.isoformat(), "reason": "发票金额有误"},
    )
    assert fixed.status_code == 201, fixed.text
    assert fixed.json()["costs_minor"] == 60000 and fixed.json()["posting_id"] != cost["posting_id"]
    again = api.post(
        f"/api/v1/legal-costs/{cost['id']}/reverse",
        json={"reversed_on": demo.as_of.isoformat(), "reason": "重复"},
    )
    assert again.status_code == 409 and again.json()["code"] == "already_reversed"
    costs = api.get(f"/api/v1/legal-cases/{legal_case_id}").json()["costs"]
    assert [(c["costs_minor"], c["reversed_on"] is not None) for c in costs] == [
        (80000, True),
        (60000, False),
    ]


def test_cli_legal_bundle_writes_a_zip_and_bundle_check_finds_a_changed_file(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'cli.db'}")
    db.upgrade(engine)
    with db.session_scope(engine) as s:
        demo = demo_case(s, make_book(s, tmp_path), tmp_path / "documents")
    engine.dispose()
    out = tmp_path / "bundle.zip"
    r = run_cli(
        ["legal", "bundle", str(demo.case_id), "--out", str(out), "--as-of", demo.as_of.isoformat()], tmp_path
    )
    assert r.returncode == 0, r.stderr
    assert "hash chain ok" in r.stdout and out.is_file()
    ok = run_cli(["legal", "bundle-check", str(out)], tmp_path)
    assert ok.returncode == 0 and "match the manifest" in ok.stdout and "chain ok" in ok.stdout

    # change one file inside the ZIP, keep the manifest: the check names the file
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(out) as src, zipfile.ZipFile(tampered, "w") as dst:
        for name in src.namelist():
            content = src.read(name)
            if name == "promises.csv":
                content = content.replace(b"50000", b"90000")
            dst.writestr(name, content)
    bad = run_cli(["legal", "bundle-check", str(tampered)], tmp_path)
    assert bad.returncode == 1 and "changed: promises.csv" in bad.stdout

    missing = run_cli(["legal", "bundle", "999999", "--out", str(tmp_path / "x.zip")], tmp_path)
    assert (
        missing.returncode == 2 and "case_not_found" in missing.stderr and "Traceback" not in missing.stderr
    )
