"""The student: a small local model that answers with tools and the strategies it retrieves.

retrieve → pack strategies into a token budget → run the agent loop (``agentkd.student.agent_loop``). The prompt
puts everything stable first, so llama.cpp's KV cache serves it again on the next turn or question:

    system: intro + tool names (+ the caller's system message)   ← the same on every call
    [the chat template's tool block]                              ← the same on every call
    system: packed strategies, ordered by id                      ← the same when the same entries come back
    worked examples as prior exchanges, ordered by id             ← the same when the same examples come back
    the conversation                                              ← question-specific

A worked example (an entry of kind ``example``: a solved scenario the ground truth verified) is shown in
the student's own format: the question as the student gets it, its ```python block, the sandbox's output,
the answer line. ``samples > 1`` votes over whole answers: the first episode greedy, the others sampled at
``sample_temperature``, and the most common final answer wins (``agentkd.student.voting.vote_answers``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any, Literal, Protocol, overload

from agentkd.chat import ChatModel, StudentModel
from agentkd.models import catalog, llamacpp
from agentkd.models.runlog import RunLog
from agentkd.prompts import render
from agentkd.schema import Attempt, Message, Scenario, Strategy, WorkedExample
from agentkd.student.agent_loop import (
    CODE_CLOSE,
    CODE_OPEN,
    DEFAULT_SAFE_TOOLS,
    AgentLoop,
    Answer,
    Done,
    Event,
    StrategiesRetrieved,
    TextDelta,
    ToolCallFinished,
    ToolCallStarted,
    code_tool,
    extract_code,
    relay,
)
from agentkd.student.voting import decided, vote_answers
from agentkd.tools import ToolBox, code_tools

__all__ = ["CODE_CLOSE", "CODE_OPEN", "Answer", "Event", "Retriever", "Student", "extract_code", "first_thought",
           "pack"]  # fmt: skip


class Retriever(Protocol):
    """Anything that finds strategies for a question (the Chroma library, an edge bundle...)."""

    def search(self, query: str, *, k: int = 3, task: str | None = None) -> Sequence[Any]: ...


def pack(strategies: Sequence[Strategy], budget_tokens: int, count_tokens: Any) -> list[Strategy]:
    """Keep the best-ranked entries that fit ``budget_tokens``, then order them by id.

    A stable order means two questions that retrieve the same entries produce the same prompt prefix,
    which llama.cpp's KV cache can reuse.
    """
    chosen, used = [], 0
    for s in strategies:
        cost = count_tokens(s.render()) + 1
        if used + cost <= budget_tokens:
            chosen.append(s)
            used += cost
    return sorted(chosen, key=lambda s: s.id)


def reuse_first(strategies: Sequence[Strategy], previous: Sequence[str]) -> list[Strategy]:
    """Order ``strategies`` so the longest run of the previous prompt's entries comes first, the rest by id."""
    by_id = {s.id: s for s in strategies}
    head = []
    for sid in previous:
        if sid not in by_id:
            break
        head.append(by_id.pop(sid))
    return head + sorted(by_id.values(), key=lambda s: s.id)


_STEP = re.compile(r"^\s*(?:\d+[.)]|[-*•])\s*")


def first_thought(strategy: Strategy, limit: int = 200) -> str:
    """A short opening for the reply: the entry's first step, e.g. ``"Plan: Name each quantity.\\n"``."""
    line = next((ln for ln in strategy.body.splitlines() if ln.strip()), "")
    step = _STEP.sub("", re.split(r"\s(?=\d+[.)]\s)", line.strip())[0])
    step = re.split(r"(?<=[.!?])\s", step)[0].strip()[:limit]
    return render("student_first_thought.md", step=step) + "\n" if step else ""


class Student:
    """A GGUF model answering with tools and retrieved strategies.

    ``samples > 1`` votes over that many whole answers (the first greedy, the others sampled at
    ``sample_temperature``); ``vote_early_stop`` stops the episodes still running once the finished ones
    have decided the vote (the winning answer is the same); ``vote_quorum`` = m > 0 also stops them once m
    have finished, and the vote is among those m (the shortest: short-m@k). ``first_thought`` prefills
    the first reply with the top strategy's first step. ``reuse_order`` orders packed entries to reuse
    the most of the previous prompt's KV cache (faster, but an answer then depends on the question
    before it; the default id order depends only on the entries).
    """

    def __init__(
        self,
        model: str | Path,
        *,
        tools: ToolBox | None = None,
        retriever: Retriever | None = None,
        k: int = 3,
        strategy_tokens: int = 600,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        temperature: float = 0.0,
        seed: int = 1234,
        max_steps: int = 4,
        max_tokens: int = 400,
        log: RunLog | None = None,
        samples: int = 1,
        sample_temperature: float = 0.5,
        safe_tools: Collection[str] = DEFAULT_SAFE_TOOLS,
        first_thought: bool = False,
        reuse_order: bool = False,
        api_base: str | None = None,
        vote_early_stop: bool = True,
        vote_quorum: int = 0,
    ) -> None:
        """``api_base``: reach ``model`` on an OpenAI-compatible server instead of loading it in-process."""
        self.model_spec = str(model)
        self.llm: StudentModel
        if api_base:
            from agentkd.models.openai_client import ServedLLM

            self.llm = ServedLLM(str(model), api_base, n_ctx=n_ctx, seed=seed)
        else:
            self.llm = llamacpp.shared(catalog.resolve(str(model)), n_ctx=n_ctx, n_threads=n_threads, seed=seed)
        self.tools = tools if tools is not None else code_tools()  # what parts.open_student gives
        self.retriever, self.k, self.strategy_tokens = retriever, k, strategy_tokens
        self.temperature, self.seed, self.max_steps, self.max_tokens = temperature, seed, max_steps, max_tokens
        self.samples, self.sample_temperature, self.safe_tools = samples, sample_temperature, safe_tools
        self.first_thought, self.reuse_order = first_thought, reuse_order
        self.vote_early_stop, self.vote_quorum = vote_early_stop, vote_quorum
        self.example_min_score = 0.65  # see Settings.example_min_score
        self.task: str | None = None  # the task whose entries it retrieves when a caller names none
        self.instructions = ""  # the task's answer instructions, when a caller gives none
        self.log = log or RunLog()
        self._previous_ids: list[str] = []

    # -- retrieval and prompt -------------------------------------------------------------------
    def retrieve(self, question: str, task: str | None = None) -> list[tuple[Strategy, float]]:
        """The packed strategies with their scores, in prompt order."""
        if self.retriever is None:
            return []
        hits = self.retriever.search(question, k=self.k, task=task)
        # a worked example of another kind of problem misleads a small student: only close ones are shown
        scored = {h.strategy.id: (h.strategy, float(h.score)) for h in hits
                  if h.strategy.kind != "example" or float(h.score) >= self.example_min_score}
        kept = pack([s for s, _ in scored.values()], self.strategy_tokens, self.llm.count_tokens)
        return [scored[s.id] for s in kept]

    def _order(self, chosen: list[tuple[Strategy, float]]) -> list[tuple[Strategy, float]]:
        scores = {s.id: score for s, score in chosen}
        strategies = [s for s, _ in chosen]
        if self.reuse_order:
            ordered = reuse_first(strategies, self._previous_ids)
        else:
            ordered = sorted(strategies, key=lambda s: s.id)
        self._previous_ids[:] = [s.id for s in ordered]  # in place: per-request copies (the server) share it
        return [(s, scores[s.id]) for s in ordered]

    def head(
        self, strategies: Sequence[Strategy], *, system: str = "", tool_names: Sequence[str] | None = None
    ) -> list[Message]:
        """The stable start of every prompt: intro and tools, then the strategies (nothing question-specific)."""
        names = [t["function"]["name"] for t in self.tools.specs()] if tool_names is None else list(tool_names)
        out: list[Message] = [{"role": "system", "content": render("student_system.md", tool_names=names,
                                                                   system=system)}]  # fmt: skip
        prose = [s for s in strategies if s.kind != "example" or not self._demonstrable(s)]
        if prose:
            text = render("student_strategies.md", strategies=[s.render() for s in prose])
            out.append({"role": "system", "content": text})
        return out

    def _demonstrable(self, entry: Strategy) -> bool:
        """An example is shown as a prior exchange when the student writes code, as text otherwise."""
        return entry.worked is not None and entry.worked.form == "program" and code_tool(self.tools) is not None

    def demonstration(self, example: WorkedExample, instructions: str) -> list[Message]:
        """A worked example as the exchange the student itself would have had: question, code, output, answer."""
        observed = render("student_observation.md", output=example.output, error="", instructions=instructions)
        return [
            {"role": "user", "content": self._question(example.question, instructions)},
            {"role": "assistant", "content": f"{CODE_OPEN}\n{example.program.strip()}\n{CODE_CLOSE}"},
            {"role": "user", "content": observed},
            {"role": "assistant", "content": f"Answer: {example.answer}"},
        ]

    def system_prompt(self, strategies: Sequence[Strategy]) -> str:
        """The system text the model sees (both system messages of ``head``), for display and token counts."""
        return "\n\n".join(m["content"] for m in self.head(sorted(strategies, key=lambda s: s.id)))

    def _question(self, text: str, instructions: str) -> str:
        return render("student_question.md", question=text, code_tool=code_tool(self.tools), instructions=instructions)

    def _loop(self, temperature: float | None = None, seed: int | None = None) -> AgentLoop:
        return AgentLoop(
            self.llm, self.tools, max_steps=self.max_steps, max_tokens=self.max_tokens,
            temperature=self.temperature if temperature is None else temperature,
            seed=self.seed if seed is None else seed, safe_tools=self.safe_tools, log=self.log,
            model_spec=self.model_spec,
        )  # fmt: skip

    def _voted(self, messages: list[Message], **run: Any) -> Iterator[Event]:
        """``samples`` whole episodes (the first greedy, the others sampled); the most common final answer wins.

        The winner's tool calls and text are replayed as events; ``Answer.votes`` records every candidate's
        answer and the tally, and the transcript is the winner's.
        """
        drawn = self._episodes(messages, run)
        answers = [a for a in drawn if a is not None]
        chosen, tally = vote_answers([a.text for a in answers])
        winner = answers[chosen]
        for n, rec in enumerate(winner.tool_calls):
            yield ToolCallStarted(f"vote_{n}", rec.name, rec.arguments, n, rec.name == code_tool(self.tools))
            yield ToolCallFinished(f"vote_{n}", rec, n, rec.name == code_tool(self.tools))
        yield TextDelta(winner.text, len(winner.tool_calls))
        winner.votes = [{"step": "answer", "candidates": len(drawn), "votes": tally, "chosen": chosen,
                         "answers": [a.text for a in answers], "finished": len(answers),
                         "stopped_early": len(answers) < len(drawn)}]
        winner.completion_tokens = sum(a.completion_tokens for a in answers)
        yield Done(winner)

    def _episodes(self, messages: list[Message], run: dict[str, Any]) -> list[Answer | None]:
        """A vote's ``samples`` episodes, in seed order. An in-process model runs them at once as sequences of
        one batch (``LocalLLM.batched``, #16): each step reads the weights once for all of them.

        With ``vote_early_stop`` the episodes still running are stopped (None) once the ones finished have
        decided the vote: the leading answer has more votes than the runner-up could reach with every
        unfinished episode. The winning answer is then the full vote's (no outcome of the others could
        change it); only which of its agreeing episodes is shown may differ. With ``vote_quorum`` = m they are
        also stopped once m episodes have finished: the vote is then among the first m to finish, which may
        differ from the full vote's (``benchmarks/batching.md`` §11 measures how often).
        """
        stop = threading.Event()

        def episode(i: int, llm: ChatModel) -> Answer | None:
            loop = self._loop(None if i == 0 else self.sample_temperature, self.seed + i)
            loop.llm = llm
            events = loop.run([dict(m) for m in messages], **run)
            try:
                for event in events:
                    if isinstance(event, Done):
                        return event.answer
                    if stop.is_set():
                        return None  # closing the stream frees its sequence for the others
            finally:
                events.close()
            return None

        drawn: list[Answer | None] = [None] * self.samples

        def finished(i: int, answer: Answer | None) -> None:
            drawn[i] = answer
            done = [a.text for a in drawn if a is not None]
            if self.vote_early_stop and decided(done, self.samples - len(done)):
                stop.set()
            if 0 < self.vote_quorum <= len(done):
                stop.set()

        if not hasattr(self.llm, "batched"):
            for i in range(self.samples):
                finished(i, episode(i, self.llm))
                if stop.is_set():
                    break
            return drawn
        batched = self.llm.batched(self.samples)
        with ThreadPoolExecutor(self.samples, thread_name_prefix="agentkd-vote") as pool:
            futures = {pool.submit(episode, i, batched): i for i in range(self.samples)}
            for future in as_completed(futures):
                finished(futures[future], future.result())
        return drawn

    # -- answering ------------------------------------------------------------------------------
    def ask(
        self,
        question: str,
        *,
        task: str | None = None,
        instructions: str = "",
        strategies: Sequence[Strategy] | None = None,
    ) -> Answer:
        """Answer one question. ``strategies`` overrides retrieval (used when measuring an entry)."""
        return _final(self.events([{"role": "user", "content": question}], task=task, instructions=instructions,
                                  strategies=strategies))  # fmt: skip

    @overload
    def chat(
        self, messages: Sequence[Message], *, stream: Literal[False] = False, tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] = "auto", task: str | None = None, instructions: str = "",
    ) -> Answer: ...
    @overload
    def chat(
        self, messages: Sequence[Message], *, stream: Literal[True], tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] = "auto", task: str | None = None, instructions: str = "",
    ) -> Iterator[Event]: ...
    def chat(
        self, messages: Sequence[Message], *, stream: bool = False, tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] = "auto", task: str | None = None, instructions: str = "",
    ) -> Answer | Iterator[Event]:  # fmt: skip
        """Answer the last user message of an OpenAI-shaped conversation.

        Without ``tools`` the student runs its own tools and returns the final answer. With ``tools``
        (the caller's), it makes one turn and returns the calls in ``Answer.pending_tool_calls`` for the
        caller to run and send back as ``tool`` messages. ``stream=True`` returns an iterator of events:
        ``StrategiesRetrieved``, ``TextDelta``, ``ToolCallStarted``/``ToolCallFinished``, then ``Done``.
        """
        events = self.events(messages, tools=tools, tool_choice=tool_choice, task=task, instructions=instructions)
        return events if stream else _final(events)

    def events(
        self,
        messages: Sequence[Message],
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] = "auto",
        task: str | None = None,
        instructions: str = "",
        strategies: Sequence[Strategy] | None = None,
    ) -> Iterator[Event]:
        """The events of one turn (see ``chat``). Without ``task``/``instructions`` the student's own defaults
        (``Student.task``, ``Student.instructions``: what ``agentkd.parts.open_student`` set) apply, so a server
        request gets the prompt an evaluation measured."""
        t0 = time.perf_counter()
        task = task if task is not None else self.task
        instructions = instructions or self.instructions
        query = next((str(m.get("content") or "") for m in reversed(messages) if m.get("role") == "user"), "")
        chosen = [(s, 1.0) for s in strategies] if strategies is not None else self.retrieve(query, task)
        chosen = self._order(chosen)
        yield StrategiesRetrieved(chosen)
        system = "\n\n".join(str(m.get("content") or "") for m in messages if m.get("role") == "system")
        rest = [dict(m) for m in messages if m.get("role") != "system"]
        names = [t.get("function", t)["name"] for t in tools] if tools else None
        convo = self.head([s for s, _ in chosen], system=system, tool_names=names)
        if tools:
            events = relay(self.llm, convo + rest, tools, tool_choice=tool_choice, temperature=self.temperature,
                           max_tokens=self.max_tokens, seed=self.seed)  # fmt: skip
        else:
            for m in rest:
                if m["role"] == "user":
                    m["content"] = self._question(str(m.get("content") or ""), instructions)
            shown = [s for s, _ in chosen if s.kind == "example" and self._demonstrable(s)]
            for s in shown:
                assert s.worked is not None
                convo += self.demonstration(s.worked, instructions)
            prose = [c for c in chosen if c[0] not in shown]
            top = max(prose, key=lambda c: c[1])[0] if prose and self.first_thought else None
            prefix = first_thought(top) if top is not None else ""
            if self.samples > 1:
                events = self._voted(convo + rest, instructions=instructions, prefix=prefix, tool_choice=tool_choice)
            else:
                events = self._loop().run(convo + rest, instructions=instructions, prefix=prefix,
                                          tool_choice=tool_choice)  # fmt: skip
        started = time.perf_counter()
        for event in events:
            if isinstance(event, Done):
                answer = event.answer
                answer.strategies = chosen
                answer.seconds = time.perf_counter() - t0
                answer.timings["retrieve"] = started - t0
                answer.timings["ttft"] = started - t0 + answer.timings.get("first_call_ttft", 0.0)
            yield event

    def attempt(
        self, scenario: Scenario, *, instructions: str = "", strategies: Sequence[Strategy] | None = None
    ) -> Attempt:
        """Answer a scenario and return the record the judge and the teacher see."""
        ans = self.ask(scenario.question, task=scenario.task, instructions=instructions, strategies=strategies)
        return Attempt(
            scenario_id=scenario.id,
            answer=ans.text,
            tool_calls=ans.tool_calls,
            strategy_ids=[s.id for s, _ in ans.strategies],
            transcript=ans.transcript,
            completion_tokens=ans.completion_tokens,
            seconds=ans.seconds,
            votes=ans.votes,
        )


def _final(events: Iterator[Event]) -> Answer:
    answer = None
    for event in events:
        if isinstance(event, Done):
            answer = event.answer
    assert answer is not None
    return answer
