"""Keyboard-wedge scanner detection from key timing."""

from __future__ import annotations

import random

import pytest

from hardware.wedge import WedgeDetector
from pos.cardqr import make_payload, parse_card_qr

CARD = make_payload("1613*****65219", "11/27", "UGX", 0, "Debit Card", 108)


def type_keys(
    det: WedgeDetector, text: str, start: float, gaps: list[float] | float
) -> tuple[list[str | None], float]:
    """Feed ``text`` one key at a time; returns what feed() said for each key and the last time."""
    results: list[str | None] = []
    t = start
    for i, ch in enumerate(text):
        if i:
            t += gaps[i - 1] if isinstance(gaps, list) else gaps
        results.append(det.feed(ch, t))
    return results, t


def scan(det: WedgeDetector, text: str, start: float = 100.0, gap: float = 0.004) -> str | None:
    results, t = type_keys(det, text, start, gap)
    assert results == [None] * len(text)  # nothing is a scan before Enter
    return det.feed("\r", t + gap)


def test_fast_burst_ending_in_enter_is_a_scan() -> None:
    det = WedgeDetector()
    assert scan(det, "01234567890") == "01234567890"
    assert det.pending == ""  # ready for the next one


def test_card_payload_with_special_characters() -> None:
    assert "&" in CARD and "*" in CARD and "/" in CARD
    det = WedgeDetector()
    got = scan(det, CARD)
    assert got == CARD
    assert parse_card_qr(got).number == "1613*****65219"


@pytest.mark.parametrize("enter", ["\r", "\n", "enter"])
def test_enter_spellings(enter: str) -> None:
    det = WedgeDetector()
    _, t = type_keys(det, "ABCDEFGH12", 5.0, 0.005)
    assert det.feed(enter, t + 0.005) == "ABCDEFGH12"


def test_feed_enter_method() -> None:
    det = WedgeDetector()
    _, t = type_keys(det, "12345678", 1.0, 0.01)
    assert det.feed_enter(t + 0.01) == "12345678"


@pytest.mark.parametrize("gap", [0.06, 0.09, 0.15, 0.3])
def test_human_typing_is_not_a_scan(gap: float) -> None:
    det = WedgeDetector()
    assert scan(det, "01234567890", gap=gap) is None


def test_fast_human_typist_with_rollover_is_not_a_scan() -> None:
    # ~120 wpm with the odd rolled pair 15 ms apart.
    rng = random.Random(7)
    gaps = [rng.choice([0.015, 0.07, 0.09, 0.11]) for _ in range(11)]
    det = WedgeDetector()
    _, t = type_keys(det, "012345678901", 0.0, gaps)
    assert det.feed("\r", t + 0.08) is None


def test_too_short_burst_is_not_a_scan() -> None:
    det = WedgeDetector(min_length=8)
    assert scan(det, "1234567") is None
    assert scan(det, "12345678", start=200.0) == "12345678"


def test_burst_interrupted_by_a_pause() -> None:
    det = WedgeDetector()
    _, t = type_keys(det, "0123456789", 0.0, 0.004)
    # The scanner stalls (or a person typed the rest): the first part is dropped.
    _, t = type_keys(det, "ABC", t + 0.5, 0.004)
    assert det.feed("\r", t + 0.004) is None
    # A full burst afterwards is recognised on its own.
    assert scan(det, "0123456789", start=t + 1.0) == "0123456789"


def test_human_keys_before_a_scan_are_dropped_after_a_pause() -> None:
    det = WedgeDetector()
    det.feed("x", 10.0)
    det.feed("y", 10.3)  # a person taps two keys, then picks up the scanner
    _, t = type_keys(det, "0123456789", 10.6, 0.004)
    assert det.feed("\r", t + 0.004) == "0123456789"


def test_key_right_before_a_scan_is_kept_not_guessed_away() -> None:
    # 100 ms before the burst: could be a person or a hiccup. Keeping it makes the
    # payload fail validation (rescan) instead of silently losing a real first digit.
    det = WedgeDetector()
    det.feed("7", 10.0)
    _, t = type_keys(det, "0123456789", 10.1, 0.004)
    assert det.feed("\r", t + 0.004) == "70123456789"


def test_timing_jitter_is_tolerated() -> None:
    # Keys arrive in clumps (0 ms) with the odd event-loop hiccup up to 100 ms.
    rng = random.Random(42)
    for trial in range(50):
        det = WedgeDetector()
        gaps = [rng.choice([0.0, 0.0, 0.001, 0.004, 0.02, 0.035]) for _ in range(len(CARD) - 1)]
        gaps[rng.randrange(len(gaps))] = 0.1  # one hiccup
        _, t = type_keys(det, CARD, 1000.0 * trial, gaps)
        assert det.feed("\r", t + 0.002) == CARD


def test_jittery_first_gap_keeps_the_first_character() -> None:
    det = WedgeDetector()
    gaps = [0.05] + [0.003] * 9
    _, t = type_keys(det, "0123456789A", 3.0, gaps)
    assert det.feed("\r", t + 0.003) == "0123456789A"


def test_burst_not_ending_in_enter_is_never_a_scan() -> None:
    det = WedgeDetector()
    results, t = type_keys(det, "0123456789", 0.0, 0.004)
    assert results == [None] * 10
    assert det.in_burst(t)
    # A person presses Enter a second later: not a scan, and the burst is gone.
    assert det.feed("\r", t + 1.0) is None
    assert det.pending == ""
    # Tab (a scanner configured with a Tab suffix) does not complete a scan either.
    _, t = type_keys(det, "0123456789", 5.0, 0.004)
    assert det.feed("tab", t + 0.004) is None
    assert det.feed("\r", t + 0.008) is None


def test_enter_alone_and_clock_going_backwards() -> None:
    det = WedgeDetector()
    assert det.feed("\r", 1.0) is None
    _, t = type_keys(det, "0123456789", 50.0, 0.004)
    assert det.feed("\r", t - 10.0) is None  # not monotonic: forget it


def test_in_burst_tracks_fast_typing_only() -> None:
    det = WedgeDetector()
    det.feed("a", 0.0)
    assert not det.in_burst(0.0)
    det.feed("b", 0.2)
    det.feed("c", 0.4)
    assert not det.in_burst(0.4)
    det.reset()
    _, t = type_keys(det, "abcd", 1.0, 0.003)
    assert det.in_burst(t)
    assert not det.in_burst(t + 1.0)


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        WedgeDetector(max_interval=0)
    with pytest.raises(ValueError):
        WedgeDetector(min_length=0)
