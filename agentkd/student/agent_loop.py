"""The agent loop: generate → run the tool → feed back the result → … → final answer, as a stream of events.

One step is one assistant turn. The model acts in one of two ways: a ```python block for the code
tool (a 0.5B model cannot JSON-escape a program, so the block itself is the call), or a
grammar-constrained JSON tool call for the other tools. A tool that fails or times out comes back
as text the model reads and acts on; only our own bugs raise.

The same loop runs the teacher where it acts with the student's tools (the eval's teacher arm, SFT
trajectories): there every tool may be a JSON call (``code_blocks=False``) and ``answer_nudge`` asks
for the final answer, in a user turn that is sent but not kept, at the last step and after a turn that
only repeats calls already made (that turn is neither run nor kept).

Two options from the agent-distillation work (Kang et al., 2025), both off by default:
- self-consistent action generation (``samples > 1``): sample candidate actions at a temperature
  with different seeds, execute each (safe tools only), keep the one whose result is most common;
- a first-thought prefix: a short opening prefilled as the start of the first reply.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from agentkd.chat import ChatModel, ChatResult, call_arguments
from agentkd.errors import ContextOverflowError
from agentkd.models.chat_template import parse_loose_tool_call
from agentkd.models.runlog import CallRecord, RunLog
from agentkd.prompts import render
from agentkd.schema import Message, Strategy, ToolCallRecord
from agentkd.student.voting import Action, execute, vote
from agentkd.tools import ToolBox, ToolResult

CODE_OPEN, CODE_CLOSE = "```python", "\n```\n"
_CODE = re.compile(r"```(?:python|py)\n(.*?)(?:```|$)", re.S)
DEFAULT_SAFE_TOOLS = frozenset({"python", "calculator"})  # side-effect free: safe to run for voting


def extract_code(text: str) -> str | None:
    """The program in the first ```python block of a reply (closed or cut at the stop string)."""
    m = _CODE.search(text)
    return m.group(1).strip() if m and m.group(1).strip() else None


@dataclass
class Answer:
    """The student's reply, with what it used to get there.

    ``pending_tool_calls`` holds OpenAI-shaped calls of *client* tools, for the caller to run.
    ``timings`` (seconds): ``retrieve`` (retrieval and packing), ``ttft`` (start to first token),
    ``prefill`` (prompt evaluation, all steps). ``votes`` has one entry per self-consistent step.
    """

    text: str
    strategies: list[tuple[Strategy, float]] = field(default_factory=list)
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    transcript: list[Message] = field(default_factory=list)
    completion_tokens: int = 0
    seconds: float = 0.0
    prompt_tokens: int = 0
    cached_tokens: int = 0
    steps: int = 0
    finish_reason: str = "stop"
    pending_tool_calls: list[dict[str, Any]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    votes: list[dict[str, Any]] = field(default_factory=list)
    error: str = ""  # why the episode ended early (the context overflowed), for the transcript and the judge
    nudged: bool = False  # the model was asked for its final answer (``AgentLoop(answer_nudge=...)``)


@dataclass(frozen=True)
class StrategiesRetrieved:
    strategies: list[tuple[Strategy, float]]


@dataclass(frozen=True)
class TextDelta:
    text: str
    step: int


@dataclass(frozen=True)
class ToolCallStarted:
    """``code``: the call is the ```python block the step's text ends with, not a JSON tool call."""

    id: str
    name: str
    arguments: dict[str, Any]
    step: int
    code: bool = False


@dataclass(frozen=True)
class ToolCallFinished:
    id: str
    record: ToolCallRecord
    step: int
    code: bool = False


@dataclass(frozen=True)
class Done:
    answer: Answer


Event = StrategiesRetrieved | TextDelta | ToolCallStarted | ToolCallFinished | Done


class AgentLoop:
    """Runs one user turn to a final answer with the tools, ``max_steps`` model calls at most."""

    def __init__(
        self,
        llm: ChatModel,
        tools: ToolBox,
        *,
        max_steps: int = 4,
        max_tokens: int = 400,
        temperature: float = 0.0,
        seed: int = 1234,
        samples: int = 1,
        sample_temperature: float = 0.7,
        safe_tools: Collection[str] = DEFAULT_SAFE_TOOLS,
        log: RunLog | None = None,
        model_spec: str = "",
        purpose: str = "answer",
        tool_output_answers: bool = True,
        code_blocks: bool = True,
        answer_nudge: str = "",
    ) -> None:
        """``purpose``: what the run log calls these model calls. ``tool_output_answers``: an episode that runs
        out of steps without a reply answers with its last tool output (a math program's printed result);
        off, it has no answer (a conversation's turn that never replied to the customer). ``code_blocks``:
        the code tool is called as a ```python block (off: as a JSON call, like the others).
        ``answer_nudge``: a user turn asking for the final answer (see the module docstring); "" sends none
        and runs repeated calls again."""
        self.llm, self.tools = llm, tools
        self.max_steps, self.max_tokens, self.temperature, self.seed = max_steps, max_tokens, temperature, seed
        self.samples, self.sample_temperature, self.safe_tools = samples, sample_temperature, set(safe_tools)
        self.log, self.model_spec = log or RunLog(), model_spec
        self.purpose, self.tool_output_answers = purpose, tool_output_answers
        self.answer_nudge = answer_nudge
        self.code_tool = code_tool(tools) if code_blocks else None
        self.json_tools = [t for t in tools.specs() if t["function"]["name"] != self.code_tool]

    def run(
        self, messages: list[Message], *, instructions: str = "", prefix: str = "",
        tool_choice: str | dict[str, Any] = "auto",
    ) -> Generator[Event, None, None]:  # fmt: skip
        """Extend ``messages`` step by step, yielding events; the last is ``Done`` with the answer."""
        answer = Answer(text="", transcript=messages)
        seen: set[tuple[str, str]] = set()  # the calls run so far (with ``answer_nudge``: not run twice)
        answer_now = False
        for step in range(self.max_steps):
            last = answer_now = answer_now or step == self.max_steps - 1
            kwargs: dict[str, Any] = {
                "tools": self.json_tools or None,
                "tool_choice": "none" if last else (tool_choice if step == 0 else "auto"),
                "max_tokens": self.max_tokens,
                "stop": (CODE_CLOSE,) if self.code_tool else (),
                "prefix": prefix if step == 0 else "",
            }
            asked = messages
            if last and self.answer_nudge:  # sent, not kept
                asked, answer.nudged = [*messages, {"role": "user", "content": self.answer_nudge}], True
            try:
                if step > 0:
                    self._require_room(asked, kwargs["tools"])
                if self.samples > 1:
                    action = yield from self._consistent_action(asked, step, last, kwargs, answer)
                else:
                    action = yield from self._action(asked, step, last, kwargs, self.temperature, self.seed)
            except ContextOverflowError as exc:
                if step == 0:  # the question itself does not fit: the caller's error (a 400, a setting to change)
                    raise
                # the conversation outgrew the context on the way (tool outputs): an outcome, not a crash
                answer.finish_reason, answer.error = "context", str(exc).splitlines()[0]
                break
            answer.steps = step + 1
            self._account(answer, action, first=step == 0)
            if action.name is None:
                messages.append(action.result.message)
                answer.text = action.result.content
                break
            if self.answer_nudge:
                if last:
                    break  # asked for the answer, it called a tool anyway (a provider that ignores tool_choice)
                calls = self._call_keys(action)
                if calls <= seen:  # only repeats: neither run nor kept, and the next step asks for the answer
                    answer_now = True
                    continue
                seen |= calls
            yield from self._run_tool(action, messages, answer, step, instructions)
        out_of_steps = not answer.text or parse_loose_tool_call(answer.text, set(self.tools.names)) is not None
        if out_of_steps and answer.tool_calls and self.tool_output_answers:  # the best answer we have
            answer.text = answer.tool_calls[-1].result
            answer.finish_reason = answer.finish_reason if answer.error else "length"
        yield Done(answer)

    # -- one step -------------------------------------------------------------------------------
    @staticmethod
    def _call_keys(action: Action) -> set[tuple[str, str]]:
        """The calls of ``action``'s turn as (tool, arguments) pairs, to tell a repeat."""
        if action.code or not action.result.tool_calls:
            return {(str(action.name), json.dumps(action.arguments, sort_keys=True))}
        return {(str(c["function"]["name"]), _key(c["function"]["arguments"])) for c in action.result.tool_calls}

    def _action(
        self, messages: list[Message], step: int, last: bool, kwargs: dict[str, Any], temperature: float, seed: int,
        *, stream: bool = True,
    ) -> Generator[Event, None, Action]:  # fmt: skip
        result = None
        for item in self.llm.chat_stream(messages, temperature=temperature, seed=seed, **kwargs):
            if isinstance(item, str):
                if stream:
                    yield TextDelta(item, step)
            else:
                result = item
        assert result is not None
        self.log.record(
            CallRecord(
                "student", self.model_spec, self.purpose, prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens, seconds=result.seconds,
            )
        )  # fmt: skip
        return self._classify(result, last)

    def _require_room(self, messages: list[Message], tools: list[dict[str, Any]] | None) -> None:
        """A step whose prompt leaves no room for its reply ends the episode (``ContextOverflowError``) rather
        than writing a reply the window cuts off; models that cannot count their prompt are assumed to fit."""
        need = prompt_room(self.llm, messages, tools)
        if need is not None and need[0] + self.max_tokens > need[1]:
            raise ContextOverflowError(
                f"the conversation is {need[0]} tokens and a reply may take {self.max_tokens}, but the context "
                f"window is {need[1]}.", hint="raise n_ctx (env AGENTKD_N_CTX) or lower max_tokens.",
            )  # fmt: skip

    def _classify(self, result: ChatResult, last: bool) -> Action:
        if result.tool_calls:
            return self._call(result, result.tool_calls[0], "call_0")
        code = extract_code(result.content) if self.code_tool and not last else None
        if code is not None and self.code_tool is not None:
            return Action(result, self.code_tool, {"code": code}, f"code_{len(code)}_{hash(code) % 10**8}", code=True)
        return Action(result)

    @staticmethod
    def _call(result: ChatResult, call: dict[str, Any], default_id: str) -> Action:
        """One tool call of ``result`` as an action; arguments that are no JSON object are the model's mistake:
        the action's output says so, and the model reads it and retries."""
        args, wrong = call_arguments(call["function"]["arguments"])
        bad = ToolResult(output=wrong, error=True) if wrong is not None else None
        return Action(result, call["function"]["name"], args, call.get("id", default_id), output=bad)

    def _consistent_action(
        self, messages: list[Message], step: int, last: bool, kwargs: dict[str, Any], answer: Answer
    ) -> Generator[Event, None, Action]:
        candidates: list[Action] = []
        for i in range(self.samples):
            gen = self._action(
                messages, step, last, kwargs, self.sample_temperature, self.seed + i, stream=False
            )
            candidates.append((yield from gen))
        for action in candidates:
            if action.name is not None and action.name in self.safe_tools:
                execute(action, self.tools, candidates)
        chosen, votes = vote(candidates)
        answer.votes.append({"step": step, "candidates": len(candidates), "votes": votes, "chosen": chosen})
        action = candidates[chosen]
        if action.result.content:
            yield TextDelta(action.result.content, step)
        return action

    def _run_tool(
        self, action: Action, messages: list[Message], answer: Answer, step: int, instructions: str
    ) -> Iterator[Event]:
        if action.code:
            out = yield from self._run_one(action, answer, step)
            messages.append({"role": "assistant", "content": f"{action.result.content}{CODE_CLOSE}".strip()})
            seen = render("student_observation.md", output=out.output, error=out.error, instructions=instructions)
            messages.append({"role": "user", "content": seen})
            return
        messages.append(action.result.message)
        # a reply may hold several calls (served models, teachers): each runs and gets its tool message, as the API asks
        more = [self._call(action.result, c, f"call_{i}") for i, c in enumerate(action.result.tool_calls[1:], start=1)]
        for one in [action, *more]:
            out = yield from self._run_one(one, answer, step)
            messages.append({"role": "tool", "tool_call_id": one.call_id, "name": one.name, "content": out.output})

    def _run_one(self, action: Action, answer: Answer, step: int) -> Generator[Event, None, ToolResult]:
        """Run ``action``'s tool (unless it already has an output) and record the call."""
        assert action.name is not None
        yield ToolCallStarted(action.call_id, action.name, action.arguments, step, action.code)
        out = action.output or self.tools.run(action.name, action.arguments)
        record = ToolCallRecord(name=action.name, arguments=action.arguments, result=out.output, error=out.error)
        answer.tool_calls.append(record)
        yield ToolCallFinished(action.call_id, record, step, action.code)
        return out

    @staticmethod
    def _account(answer: Answer, action: Action, *, first: bool) -> None:
        r = action.result
        answer.completion_tokens += r.completion_tokens
        answer.timings["prefill"] = answer.timings.get("prefill", 0.0) + r.timings.get("prefill", 0.0)
        if first:
            answer.prompt_tokens, answer.cached_tokens = r.prompt_tokens, r.cached_tokens
            answer.timings["first_call_ttft"] = r.timings.get("ttft", 0.0)
        answer.finish_reason = r.finish_reason


def _key(raw: Any) -> str:
    """Arguments as a comparable string: the parsed object, or the raw text when it is no JSON object."""
    args, wrong = call_arguments(raw)
    return str(raw) if wrong is not None else json.dumps(args, sort_keys=True)


def code_tool(tools: ToolBox) -> str | None:
    """The name of a tool that takes just ``code``: small models use it best as a ```python block."""
    for spec in tools.specs():
        params = spec["function"].get("parameters") or {}
        if set(params.get("properties") or {}) == {"code"}:
            return str(spec["function"]["name"])
    return None


def prompt_room(llm: Any, messages: list[Message], tools: list[dict[str, Any]] | None) -> tuple[int, int] | None:
    """(prompt tokens, context size) when the model can count its prompt (an in-process model); else None."""
    render_, count, n_ctx = (getattr(llm, a, None) for a in ("render", "count_tokens", "n_ctx"))
    if render_ is None or count is None or not isinstance(n_ctx, int):
        return None
    return int(count(render_(messages, tools))), n_ctx


def relay(
    llm: ChatModel, messages: list[Message], tools: list[dict[str, Any]], *, tool_choice: str | dict[str, Any],
    temperature: float, max_tokens: int, seed: int,
) -> Iterator[Event]:  # fmt: skip
    """One turn with the *client's* tools: a call is returned for the client to run, not run here."""
    result = None
    for item in llm.chat_stream(
        messages, tools=tools, tool_choice=tool_choice, temperature=temperature, max_tokens=max_tokens, seed=seed
    ):
        if isinstance(item, str):
            yield TextDelta(item, 0)
        else:
            result = item
    assert result is not None
    messages.append(result.message)
    yield Done(
        Answer(
            text=result.content, transcript=messages, completion_tokens=result.completion_tokens,
            prompt_tokens=result.prompt_tokens, cached_tokens=result.cached_tokens, steps=1,
            finish_reason=result.finish_reason, pending_tool_calls=result.tool_calls,
            timings={"prefill": result.timings.get("prefill", 0.0), "first_call_ttft": result.timings.get("ttft", 0.0)},
        )
    )  # fmt: skip
