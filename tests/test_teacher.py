"""The teacher: retries on transient faults, re-asks on invalid output, records usage."""

from __future__ import annotations

import json

import pytest

from agentkd.errors import (
    TeacherConnectionError,
    TeacherError,
    TeacherOutputError,
    TeacherRateLimited,
    TeacherTimeout,
)
from agentkd.schema import StrategyDraft
from agentkd.teacher.teacher import extract_json
from agentkd.testing import fake_teacher

GOOD = json.dumps(
    {
        "kind": "strategy",
        "title": "Check the units",
        "trigger": "A rate problem mixes units",
        "body": "Convert every quantity to one unit before combining them.",
        "tool_hints": [],
    }
)
ASK = [{"role": "user", "content": "write a strategy"}]


def test_invalid_output_is_reasked_with_the_validation_error() -> None:
    teacher = fake_teacher(['{"kind": "strategy", "title": "x"}', GOOD])
    draft = teacher.structured(ASK, StrategyDraft)
    assert draft.title == "Check the units"
    calls = teacher.transport.calls  # type: ignore[attr-defined]
    assert len(calls) == 2
    reask = calls[1]["messages"][-1]["content"]
    assert "title" in reask and "at least 5 characters" in reask
    assert calls[1]["messages"][-2] == {"role": "assistant", "content": '{"kind": "strategy", "title": "x"}'}


def test_prose_and_code_fences_around_json_are_tolerated() -> None:
    teacher = fake_teacher([f"Here it is:\n```json\n{GOOD}\n```\nHope it helps"])
    assert teacher.structured(ASK, StrategyDraft).kind == "strategy"
    assert extract_json("no json at all") == "no json at all"


def test_gives_up_after_bounded_reasks_with_every_attempt_kept() -> None:
    teacher = fake_teacher(["not json", "{}", "still bad"], max_reasks=2)
    with pytest.raises(TeacherOutputError) as exc:
        teacher.structured(ASK, StrategyDraft)
    assert [a["output"] for a in exc.value.attempts] == ["not json", "{}", "still bad"]
    assert exc.value.last_output == "still bad"
    assert "AGENTKD_MAX_REASKS" in str(exc.value)


def test_timeouts_and_drops_are_retried_with_backoff() -> None:
    sleeps: list[float] = []
    teacher = fake_teacher(
        [TeacherTimeout("slow"), TeacherConnectionError("reset"), "ok"], sleep=sleeps.append, backoff=1.0
    )
    assert teacher.complete(ASK)["content"] == "ok"
    assert len(sleeps) == 2 and 0.75 <= sleeps[0] <= 1.25 and 1.5 <= sleeps[1] <= 2.5
    usage = teacher.log.totals("teacher")
    assert usage.calls == 3 and usage.completion_tokens == 10


def test_rate_limit_honours_retry_after() -> None:
    sleeps: list[float] = []
    teacher = fake_teacher([TeacherRateLimited("429", retry_after=7.0), "ok"], sleep=sleeps.append)
    assert teacher.complete(ASK)["content"] == "ok"
    assert sleeps == [7.0]


def test_persistent_failure_raises_a_teacher_error_with_a_hint() -> None:
    teacher = fake_teacher([TeacherTimeout("slow")], repeat_last=True, retries=2)
    with pytest.raises(TeacherError) as exc:
        teacher.complete(ASK)
    assert "failed 3 times" in str(exc.value) and "hint" in str(exc.value)
    assert teacher.log.totals("teacher").failures == 1


def test_scrubber_sees_every_message_before_it_leaves() -> None:
    teacher = fake_teacher(["ok"], scrub=lambda s: s.replace("alice@example.com", "<email>"))
    teacher.complete([{"role": "user", "content": "mail alice@example.com"}])
    assert teacher.transport.calls[0]["messages"][0]["content"] == "mail <email>"  # type: ignore[attr-defined]


def test_a_rule_beyond_the_schema_is_fed_back_like_a_validation_error() -> None:
    leaky = json.dumps({**json.loads(GOOD), "body": "Multiply 12 by 7 to get 84, the answer."})
    teacher = fake_teacher([leaky, GOOD])
    draft = teacher.structured(
        ASK, StrategyDraft, check=lambda d: "it contains the answer 84" if "84" in d.body else None
    )
    assert "84" not in draft.body
    assert "it contains the answer 84" in teacher.transport.calls[1]["messages"][-1]["content"]  # type: ignore[attr-defined]
