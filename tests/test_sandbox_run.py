"""Output capture: a bounded head and tail of each stream, whatever the flood."""

from __future__ import annotations

from grader.sandbox.run import _Capture


def test_output_within_budget_is_kept_whole() -> None:
    capture = _Capture(100)
    for piece in (b"hello ", b"world"):
        capture.feed(piece)
    assert (capture.text(), capture.dropped) == ("hello world", 0)


def test_a_flood_keeps_head_and_tail_and_counts_the_rest() -> None:
    capture = _Capture(10)
    for i in range(1000):
        capture.feed(f"{i:04d}".encode())
    assert capture.dropped == 4000 - 10
    assert capture.text() == "00000\n[... 3990 bytes of output dropped ...]\n80999"


def test_a_single_huge_write_is_cut_too() -> None:
    capture = _Capture(8)
    capture.feed(b"a" * 4 + b"b" * 1000 + b"c" * 4)
    assert capture.text() == "aaaa\n[... 1000 bytes of output dropped ...]\ncccc"


def test_broken_utf8_at_the_cut_is_replaced_not_fatal() -> None:
    capture = _Capture(3)  # a head of one byte: half an "é"
    capture.feed("ééé".encode())
    assert "\ufffd" in capture.text()
