"""The scrubber masks personal data before it reaches a remote teacher, and is on by default for them."""

from __future__ import annotations

from agentkd.teacher.scrubber import Scrubber, default_scrubber


def test_personal_data_is_masked_and_numbers_that_matter_are_kept() -> None:
    text = ("I am Olivia Smith (olivia.smith@example.com, +1 415-555-0132), card 4111 1111 1111 1111. "
            "Mr. Brown and Zorblax bought 12 apples for 34.50 on order #W2378156.")
    out = Scrubber(["Zorblax"])(text)
    for secret in ("Olivia", "Smith", "olivia.smith@example.com", "415-555-0132", "4111", "Brown", "Zorblax"):
        assert secret not in out, secret
    for kept in ("12 apples", "34.50", "#W2378156"):
        assert kept in out
    assert out.count("<name>") >= 3 and "<email>" in out and "<phone>" in out and "<card>" in out


def test_numbers_that_fail_the_card_checksum_are_not_cards() -> None:
    assert Scrubber()("ref 1234 5678 9012 3456") == "ref 1234 5678 9012 3456"


def test_on_by_default_only_for_remote_teachers() -> None:
    assert default_scrubber("openai/gpt-4o-mini") is not None
    assert default_scrubber("local/qwen2.5-coder-1.5b") is None
    assert default_scrubber("local/x", enabled=True) is not None
