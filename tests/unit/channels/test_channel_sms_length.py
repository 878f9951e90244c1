"""SMS length and segments: GSM-7 160/153, UCS-2 (Chinese) 70/67."""

from __future__ import annotations

from math import ceil

from hypothesis import given
from hypothesis import strategies as st

from arrears.channels.templates import SmsEncoding, sms_encoding, sms_length, sms_limits

GSM_PLAIN = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:;!?", max_size=800
)
CHINESE = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), max_size=400)


def test_ascii_text_is_gsm7_and_chinese_is_ucs2() -> None:
    assert sms_encoding("Pay by 5 March") is SmsEncoding.GSM7
    assert sms_encoding("请于3月5日前还款") is SmsEncoding.UCS2


def test_gsm7_single_segment_holds_160_and_161_needs_two() -> None:
    assert sms_length("a" * 160).segments == 1
    assert sms_length("a" * 161).segments == 2
    assert sms_length("a" * 306).segments == 2
    assert sms_length("a" * 307).segments == 3


def test_ucs2_single_segment_holds_70_and_71_needs_two() -> None:
    assert sms_length("还" * 70).segments == 1
    assert sms_length("还" * 71).segments == 2
    assert sms_length("还" * 134).segments == 2
    assert sms_length("还" * 135).segments == 3


def test_one_chinese_character_turns_a_long_ascii_text_into_ucs2() -> None:
    length = sms_length("a" * 100 + "元")
    assert length.encoding is SmsEncoding.UCS2
    assert length.segments == 2


def test_gsm7_extension_characters_count_two_septets() -> None:
    assert sms_length("€" * 80).units == 160
    assert sms_length("€" * 80).segments == 1
    assert sms_length("€" * 81).segments == 2


def test_an_escape_pair_is_never_split_between_segments() -> None:
    # 152 plain septets then a 2-septet character: it cannot start in the first part (153 septets).
    length = sms_length("a" * 152 + "€" + "a" * 10)
    assert length.segment_units[0] == 152
    assert sum(length.segment_units) == length.units


def test_emoji_counts_as_a_utf16_surrogate_pair() -> None:
    assert sms_length("😀").units == 2
    assert sms_length("😀").encoding is SmsEncoding.UCS2


@given(GSM_PLAIN)
def test_gsm7_segments_follow_the_160_153_formula(text: str) -> None:
    lim = sms_limits()
    expected = 1 if len(text) <= lim.gsm7_single else ceil(len(text) / lim.gsm7_multi)
    assert sms_length(text).segments == expected


@given(CHINESE)
def test_ucs2_segments_follow_the_70_67_formula(text: str) -> None:
    lim = sms_limits()
    expected = 1 if len(text) <= lim.ucs2_single else ceil(len(text) / lim.ucs2_multi)
    assert sms_length(text).segments == expected


@given(st.text(max_size=500))
def test_every_segment_fits_its_capacity_and_units_add_up(text: str) -> None:
    lim = sms_limits()
    length = sms_length(text)
    single, multi = (
        (lim.gsm7_single, lim.gsm7_multi)
        if length.encoding is SmsEncoding.GSM7
        else (lim.ucs2_single, lim.ucs2_multi)
    )
    capacity = single if length.segments == 1 else multi
    assert all(units <= capacity for units in length.segment_units)
    assert sum(length.segment_units) == length.units
