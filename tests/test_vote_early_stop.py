"""A vote stops the episodes still running once the finished ones have decided it, and the winner is the same."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentkd.chat import ChatResult
from agentkd.student.student import Student
from agentkd.student.voting import decided, vote_answers

pytestmark = pytest.mark.model  # the Student loads its (real, tiny) model before the fake takes its place


@pytest.mark.parametrize("texts, unfinished, expected", [
    (["Answer: 7", "Answer: 7.00", "Answer: 7"], 2, True),  # 3 > 0 + 2
    (["Answer: 7", "Answer: 7"], 2, False),  # 2 more could tie it
    (["Answer: 7", "Answer: 8", "Answer: 7", "Answer: 7"], 1, True),  # 3 > 1 + 1
    (["Answer: 7", "Answer: 8", "Answer: 7"], 1, False),  # 2 vs 1 + 1: a tie is still possible
    (["", "", ""], 0, False),  # empty answers do not vote
    (["Answer: 7"], 0, True),
])
def test_a_vote_is_decided_only_when_no_unfinished_answers_could_change_the_winner(
    texts: list[str], unfinished: int, expected: bool
) -> None:
    assert decided(texts, unfinished) is expected


class ByThread:
    """Answers by sampling seed: ``answers[seed]``, written in ``words[seed]`` deltas ``pause`` seconds apart.
    ``batched`` is itself, so a vote runs its episodes at once as with the in-process engine."""

    def __init__(self, real: Any, answers: dict[int, str], words: dict[int, int], pause: float = 0.0,
                 batched: bool = True) -> None:  # fmt: skip
        self.real, self.answers, self.words, self.pause = real, answers, words, pause
        self.started: list[int] = []
        self.closed: list[int] = []
        self.lock = threading.Lock()
        if batched:
            self.batched = lambda width: self

    def __getattr__(self, name: str) -> Any:
        if name == "batched":  # only when given: one by one otherwise
            raise AttributeError(name)
        return getattr(self.real, name)

    def chat_stream(self, messages: list[dict[str, Any]], *, seed: int = 0, **_: Any) -> Iterator[str | ChatResult]:
        n = seed - 1234
        with self.lock:
            self.started.append(n)
        try:
            for _i in range(self.words[n]):
                time.sleep(self.pause)
                yield "."
            text = f"Answer: {self.answers[n]}"
            yield text
            yield ChatResult(message={"role": "assistant", "content": text}, finish_reason="stop", prompt_tokens=10,
                             completion_tokens=self.words[n] + 2, seconds=0.0)
        finally:
            with self.lock:
                self.closed.append(n)


def _student(smollm_path: Path, model: ByThread, early: bool = True) -> Student:
    student = Student(smollm_path, n_ctx=2048, samples=5, max_steps=1, seed=1234, vote_early_stop=early)
    student.llm = model  # type: ignore[assignment]
    return student


def test_one_by_one_a_vote_stops_once_decided(smollm_path: Path) -> None:
    real = Student(smollm_path, n_ctx=2048).llm
    answers = {0: "7", 1: "8", 2: "7", 3: "7", 4: "9"}
    model = ByThread(real, answers, dict.fromkeys(range(5), 1), batched=False)
    answer = _student(smollm_path, model).ask("q")
    assert model.started == [0, 1, 2, 3]  # after 7, 8, 7, 7 the fifth could not change the winner
    vote = answer.votes[0]
    assert (vote["candidates"], vote["finished"], vote["stopped_early"]) == (5, 4, True)
    full = ByThread(real, answers, dict.fromkeys(range(5), 1), batched=False)
    whole = _student(smollm_path, full, early=False).ask("q")
    assert full.started == [0, 1, 2, 3, 4] and whole.votes[0]["stopped_early"] is False
    assert vote_answers([answer.text])[1] == vote_answers([whole.text])[1] == {"7": 1}  # the same winner


def test_episodes_still_running_are_stopped_and_their_streams_closed(smollm_path: Path) -> None:
    real = Student(smollm_path, n_ctx=2048).llm
    # three fast episodes agree; two slow ones would take 4 s each
    model = ByThread(real, dict.fromkeys(range(5), "7"), {0: 1, 1: 1, 2: 1, 3: 200, 4: 200}, pause=0.02)
    t0 = time.perf_counter()
    answer = _student(smollm_path, model).ask("q")
    assert time.perf_counter() - t0 < 2.0
    assert answer.text.endswith("7") and answer.votes[0]["finished"] == 3 and answer.votes[0]["stopped_early"]
    assert sorted(model.closed) == [0, 1, 2, 3, 4]  # the stopped episodes' streams were closed too
