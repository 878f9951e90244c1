"""Chinese line breaking for letters: numbers stay whole, no closing punctuation starts a line."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from arrears.channels.letters import break_lines


def width(text: str) -> float:
    return float(len(text))


def test_an_amount_is_never_split_across_lines() -> None:
    lines = break_lines("其中逾期应还金额为¥2,100.00，已逾期5天。", 12, width)
    assert any("¥2,100.00" in line for line in lines)


def test_closing_punctuation_hangs_instead_of_starting_a_line() -> None:
    lines = break_lines("一二三四五、六七", 5, width)
    assert lines[0] == "一二三四五、"
    assert not lines[1].startswith("、")


def test_opening_punctuation_moves_to_the_next_line() -> None:
    lines = break_lines("一二三四《五六》", 5, width)
    assert lines[0] == "一二三四"
    assert lines[1].startswith("《")


def test_a_run_longer_than_a_line_is_cut_rather_than_overflowing() -> None:
    lines = break_lines("https://pay.example.cn/c/C2025000123", 10, width)
    assert all(len(line) <= 10 for line in lines)
    assert "".join(lines) == "https://pay.example.cn/c/C2025000123"


@given(
    st.text(alphabet="一二三四五六七八九十，。、（）《》ab12 .¥", min_size=1, max_size=200),
    st.integers(min_value=4, max_value=40),
)
def test_lines_keep_every_character_and_fit_the_width(text: str, limit: int) -> None:
    lines = break_lines(text, limit, width)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    for line in lines:
        # Only hanging closing punctuation may pass the margin.
        assert len(line.rstrip("，。、）》.")) <= limit
