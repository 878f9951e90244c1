"""Rule packs as data files: loading, listing, operator packs, and clear refusals."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from arrears.compliance.pack import PACK_DIR_ENV, list_packs, load_pack
from arrears.errors import ConfigurationError, NotFound

BUILTIN = Path(__file__).resolve().parents[3] / "src" / "arrears" / "compliance" / "packs"


def test_builtin_packs_load_and_carry_rulebook_numbers() -> None:
    cn, us = load_pack("cn"), load_pack("us-regf")
    assert cn.quiet_hours is not None and cn.quiet_hours.id == "CN-1"
    assert (cn.quiet_hours.allowed_from.hour, cn.quiet_hours.allowed_until.hour) == (8, 22)
    assert cn.daily_call_cap is not None and cn.daily_call_cap.max_attempts == 6
    assert cn.third_party_gate is not None and cn.third_party_gate.consecutive_failed_attempts == 3
    assert cn.limitation is not None and (cn.limitation.period_years, cn.limitation.absolute_years) == (3, 20)
    assert us.call_frequency is not None and (us.call_frequency.max_calls, us.call_frequency.window_days) == (
        7,
        7,
    )
    assert us.quiet_hours is not None and us.quiet_hours.allowed_until.hour == 21
    assert {"cn", "us-regf"} <= set(list_packs())


def test_operator_directory_adds_a_pack_without_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (BUILTIN / "cn.toml").read_text(encoding="utf-8")
    (tmp_path / "cn-strict.toml").write_text(
        text.replace('name = "cn"', 'name = "cn-strict"').replace("max_attempts = 6", "max_attempts = 3"),
        encoding="utf-8",
    )
    monkeypatch.setenv(PACK_DIR_ENV, str(tmp_path))
    assert "cn-strict" in list_packs()
    pack = load_pack("cn-strict")
    assert pack.daily_call_cap is not None and pack.daily_call_cap.max_attempts == 3
    assert pack.source == str(tmp_path / "cn-strict.toml")
    assert load_pack(tmp_path / "cn-strict.toml").name == "cn-strict"


def test_operator_copy_overrides_the_builtin_pack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (BUILTIN / "cn.toml").read_text(encoding="utf-8").replace("max_attempts = 6", "max_attempts = 4")
    (tmp_path / "cn.toml").write_text(text, encoding="utf-8")
    monkeypatch.setenv(PACK_DIR_ENV, str(tmp_path))
    pack = load_pack("cn")
    assert pack.daily_call_cap is not None and pack.daily_call_cap.max_attempts == 4


def test_unknown_key_is_refused_naming_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    shutil.copy(BUILTIN / "cn.toml", path)
    path.write_text(
        path.read_text(encoding="utf-8").replace("max_attempts = 6", "max_attempts = 6\nmax_atempts = 5")
    )
    with pytest.raises(ConfigurationError) as err:
        load_pack(path)
    assert str(path) in err.value.message and "daily_call_cap.max_atempts: unknown key" in err.value.message


def test_malformed_value_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    text = (BUILTIN / "cn.toml").read_text(encoding="utf-8")
    path.write_text(text.replace('allowed_from = "08:00"', 'allowed_from = "25:00"'), encoding="utf-8")
    with pytest.raises(ConfigurationError) as err:
        load_pack(path)
    assert "quiet_hours.allowed_from" in err.value.message and "'25:00'" in err.value.message
    path.write_text(text.replace('channels = ["call"]', 'channels = ["pigeon"]'), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"daily_call_cap\.channels"):
        load_pack(path)
    path.write_text(text.replace('id = "CN-2"', 'id = "cn two"'), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"daily_call_cap\.id"):
        load_pack(path)


def test_bad_toml_unknown_zone_and_name_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = (BUILTIN / "cn.toml").read_text(encoding="utf-8")
    (tmp_path / "broken.toml").write_text("name = ", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_pack(tmp_path / "broken.toml")
    (tmp_path / "zone.toml").write_text(text.replace("Asia/Shanghai", "Mars/Olympus"), encoding="utf-8")
    with pytest.raises(ConfigurationError, match="default_time_zone"):
        load_pack(tmp_path / "zone.toml")
    (tmp_path / "other.toml").write_text(text, encoding="utf-8")
    monkeypatch.setenv(PACK_DIR_ENV, str(tmp_path))
    with pytest.raises(ConfigurationError, match="declares 'cn'"):
        load_pack("other")


def test_unknown_pack_name_lists_the_available_ones() -> None:
    with pytest.raises(NotFound, match=r"available: .*cn"):
        load_pack("atlantis")
