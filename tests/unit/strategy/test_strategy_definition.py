"""Strategy files: loading, the operator directory, and errors that name the file and the key."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

import pytest

from arrears.errors import NotFound, ValidationFailed
from arrears.strategy.definition import ActionKind, RepeatKind, Strategy
from arrears.strategy.loader import STRATEGY_DIR_ENV, list_strategies, load_strategy, strategy_from_mapping

DEFAULT_TEXT = resources.files("arrears.strategy").joinpath("strategies/default.toml").read_text("utf-8")


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(text, encoding="utf-8")
    return path


def default_with(old: str, new: str, *, name: str = "mine") -> str:
    assert old in DEFAULT_TEXT, old
    return DEFAULT_TEXT.replace(old, new, 1).replace('name = "default"', f'name = "{name}"', 1)


def test_default_strategy_loads_with_the_stages_of_the_design() -> None:
    strategy = load_strategy("default")
    names = [s.name for s in strategy.stages]
    for stage in ("held", "legal", "pre_due", "gentle", "firm", "intensive"):
        assert stage in names
    assert names.index("held") == 0  # flagged accounts are caught before anything else
    assert [e.name for e in strategy.exits] == ["paid"]
    assert strategy.stage("held").actions == ()
    assert strategy.version >= 1


def test_default_strategy_plans_channels_named_in_the_design() -> None:
    strategy = load_strategy("default")
    kinds = {a.kind for s in strategy.stages for a in s.actions}
    assert kinds == set(ActionKind)
    firm = strategy.stage("firm")
    assert any(a.kind is ActionKind.LETTER and a.dpd_min == 5 for a in firm.actions)
    gentle = strategy.stage("gentle")
    assert any(a.kind is ActionKind.SMS for a in gentle.actions)
    assert any(a.kind is ActionKind.CALL_TASK and a.dpd_min == 2 for a in gentle.actions)


def test_list_strategies_shows_packaged_and_operator_files(tmp_path: Path) -> None:
    write(tmp_path, "mine", default_with("version = 1", "version = 7"))
    infos = {i.name: i for i in list_strategies(directory=tmp_path)}
    assert infos["default"].source == "packaged"
    assert infos["mine"].source == "operator" and infos["mine"].version == 7


def test_operator_directory_from_environment_overrides_packaged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "default", default_with("version = 1", "version = 42", name="default"))
    monkeypatch.setenv(STRATEGY_DIR_ENV, str(tmp_path))
    assert load_strategy("default").version == 42
    assert {i.name: i.source for i in list_strategies()}["default"] == "operator"


def test_unknown_strategy_is_not_found() -> None:
    with pytest.raises(NotFound):
        load_strategy("no_such_strategy", directory="/nonexistent")


def test_misspelt_key_is_refused_naming_file_stage_action_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "mine", default_with('template = "courtesy_call"', 'templat = "courtesy_call"'))
    with pytest.raises(ValidationFailed) as caught:
        load_strategy(path)
    message = caught.value.message
    assert str(path) in message
    assert "stages[6] (gentle).actions[1] (courtesy_call).templat" in message
    assert "Extra inputs are not permitted" in message


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "mine", "name = \n")
    with pytest.raises(ValidationFailed) as caught:
        load_strategy(path)
    assert str(path) in caught.value.message and caught.value.code == "bad_toml"


def test_file_name_must_match_declared_name(tmp_path: Path) -> None:
    path = write(tmp_path, "other", default_with("version = 1", "version = 1", name="mine"))
    with pytest.raises(ValidationFailed, match="declares 'mine'"):
        load_strategy(path)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'repeat = "daily"\n  max_times = 2\n  dpd_min = 2',
            'repeat = "daily"\n  dpd_min = 2',
            "needs max_times",
        ),
        (
            'repeat = "once"\n  rule_ids = ["CN-22", "US-8"]',
            'repeat = "once"\n  every_days = 3\n  rule_ids = ["CN-22", "US-8"]',
            "every_days only applies",
        ),
        (
            "when = [{ dpd_min = 1, dpd_max = 3 }]",
            "when = [{ dpd_min = 3, dpd_max = 1 }]",
            "dpd_min (3) is greater",
        ),
        ("when = [{ dpd_min = 4, dpd_max = 5 }]", "when = []", "at least 1 item"),
        ('kind = "letter"', 'kind = "fax"', "Input should be"),
        ('name = "firm"', 'name = "gentle"', "gentle repeat"),
        ('pinned_stages = ["legal"]', 'pinned_stages = ["court"]', "'court', which is not a stage"),
        (
            "window_start = 09:00:00\n  window_end = 18:00:00",
            "window_start = 18:00:00\n  window_end = 09:00:00",
            "before",
        ),
        ('template = "field_visit"', 'template = "Field Visit!"', "String should match pattern"),
        ("balance_cap_minor = 10_000_000", "balance_cap_minor = 0", "greater than 0"),
    ],
)
def test_invalid_strategy_is_refused_with_a_clear_error(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    path = write(tmp_path, "mine", default_with(old, new))
    with pytest.raises(ValidationFailed) as caught:
        load_strategy(path)
    assert expected in caught.value.message
    assert caught.value.message.startswith(str(path))


def test_held_stage_cannot_have_actions(tmp_path: Path) -> None:
    held_action = (
        'when = [{ flagged = true }]\n\n  [[stages.actions]]\n  name = "sms"\n  kind = "sms"\n'
        '  template = "x"\n  window_start = 09:00:00\n  window_end = 10:00:00\n  repeat = "once"\n'
    )
    path = write(tmp_path, "mine", default_with("when = [{ flagged = true }]\n", held_action))
    with pytest.raises(
        ValidationFailed, match=r"stages\[0\] \(held\): stage 'held' only holds flagged accounts"
    ):
        load_strategy(path)


def test_cn22_legal_referral_must_require_not_time_barred(tmp_path: Path) -> None:
    data = tomllib.loads(DEFAULT_TEXT)
    data["name"] = "mine"
    for block in data["stages"][1]["when"]:
        del block["time_barred"]
    with pytest.raises(ValidationFailed, match="CN-22"):
        strategy_from_mapping(data)
    data["stages"][1]["actions"][0]["when"] = {"time_barred": False}
    assert isinstance(strategy_from_mapping(data), Strategy)


def test_repeat_rules_are_parsed_as_kinds() -> None:
    strategy = load_strategy("default")
    call = next(a for a in strategy.stage("intensive").actions if a.name == "call")
    assert call.repeat is RepeatKind.EVERY and call.every_days == 2
