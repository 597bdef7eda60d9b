"""The one module that imports llama_cpp: a local GGUF model with OpenAI-shaped chat and tool calls.

Design notes
- The prompt is rendered from the chat template stored in the GGUF (Jinja, as Hugging Face does), so
  the model sees the format it was trained on; templates without tool support get a tool preamble.
- Tool calls use a *lazy grammar*: the model writes freely (fast, unconstrained sampling) until it
  opens ``<tool_call>``; from there the JSON is sampled under a grammar built from the offered tools'
  schemas, so a tool call always parses and always names an offered tool. A forced ``tool_choice``
  starts in the grammar at once.
- ``Llama.generate`` keeps the KV cache of the longest common token prefix, so a system prompt and
  packed strategies shared with the previous call are not evaluated again.
- This module needs only llama-cpp-python (and its jinja2), so edge devices can use it alone.
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import llama_cpp
from jinja2.sandbox import ImmutableSandboxedEnvironment

TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"

_TOOL_PREAMBLE = (
    "# Tools\n\nYou may call one of these functions. Signatures:\n<tools>\n{tools}\n</tools>\n\n"
    'To call one, reply with\n<tool_call>\n{{"name": <function-name>, "arguments": <args-json-object>}}\n'
    "</tool_call>"
)


@dataclass
class ChatResult:
    """One assistant turn. ``message`` is OpenAI-shaped (role, content, tool_calls)."""

    message: dict[str, Any]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    cached_tokens: int = 0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def content(self) -> str:
        return str(self.message.get("content") or "")

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return list(self.message.get("tool_calls") or [])


def tool_call_schema(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """JSON schema of one tool call ``{"name": ..., "arguments": {...}}`` over the offered tools."""
    options = []
    for t in tools:
        fn = t.get("function", t)
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        options.append(
            {
                "type": "object",
                "properties": {"name": {"const": fn["name"]}, "arguments": params},
                "required": ["name", "arguments"],
            }
        )
    return options[0] if len(options) == 1 else {"anyOf": options}


def _as_template_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Templates expect tool-call arguments as objects, OpenAI sends them as JSON strings."""
    out = []
    for m in messages:
        m = dict(m)
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = dict(c.get("function", c))
                if isinstance(fn.get("arguments"), str):
                    with contextlib.suppress(json.JSONDecodeError):
                        fn["arguments"] = json.loads(fn["arguments"])
                calls.append({"type": "function", "id": c.get("id"), "function": fn})
            m["tool_calls"] = calls
        if m.get("content") is None:
            m["content"] = ""
        out.append(m)
    return out


def _inline_tool_turns(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """For templates that know no tools: tool calls become text in the assistant's turn, results a user turn."""
    out = []
    for m in messages:
        if m.get("tool_calls"):
            calls = "\n".join(
                f"{TOOL_OPEN}\n{json.dumps({'name': c['function']['name'], 'arguments': c['function']['arguments']})}"
                f"\n{TOOL_CLOSE}"
                for c in m["tool_calls"]
            )
            out.append({"role": "assistant", "content": f"{m.get('content') or ''}\n{calls}".strip()})
        elif m["role"] == "tool":
            out.append({"role": "user", "content": f"<tool_response>\n{m.get('content') or ''}\n</tool_response>"})
        else:
            out.append(m)
    return out


_JSON_BLOCK = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.S)


def parse_loose_tool_call(text: str, names: set[str]) -> dict[str, Any] | None:
    """Recover a tool call the model wrote as a JSON block instead of ``<tool_call>`` (best effort)."""
    for candidate in [*_JSON_BLOCK.findall(text), text.strip()]:
        try:
            obj = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and obj.get("name") in names and isinstance(obj.get("arguments"), dict):
            return obj
    return None


class LocalLLM:
    """A GGUF model loaded in-process. Calls are serialized with a lock: one model, one KV cache."""

    def __init__(
        self,
        path: str | Path,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        seed: int = 1234,
        verbose: bool = False,
    ) -> None:
        self.path = Path(path)
        self.seed = seed
        self._generated = 0
        self.lock = threading.RLock()
        self._llm = llama_cpp.Llama(
            model_path=str(self.path),
            n_ctx=n_ctx,
            n_threads=n_threads or os.cpu_count() or 2,
            seed=seed,
            verbose=verbose,
            logits_all=False,
        )
        meta = self._llm.metadata
        self.name = meta.get("general.name", self.path.stem)
        source = meta.get("tokenizer.chat_template") or _CHATML
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.Undefined)
        env.filters["tojson"] = lambda v, indent=None: json.dumps(v, ensure_ascii=False, indent=indent)
        self._template = env.from_string(source)
        self._template_has_tools = "tools" in source
        self._bos = self._token_text(self._llm.token_bos())
        self._eos = self._token_text(self._llm.token_eos())

    # -- tokens -------------------------------------------------------------------------------
    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self._llm.detokenize([token], special=True).decode("utf-8", errors="ignore")

    def tokenize(self, text: str) -> list[int]:
        return self._llm.tokenize(text.encode(), add_bos=False, special=True)

    def count_tokens(self, text: str) -> int:
        return len(self.tokenize(text))

    @property
    def n_ctx(self) -> int:
        return int(self._llm.n_ctx())

    # -- prompts ------------------------------------------------------------------------------
    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        msgs = _as_template_messages(messages)
        if not self._template_has_tools:
            msgs = _inline_tool_turns(msgs)
        if tools and not self._template_has_tools:
            preamble = _TOOL_PREAMBLE.format(tools="\n".join(json.dumps(t) for t in tools))
            if msgs and msgs[0]["role"] == "system":
                msgs[0] = {**msgs[0], "content": f"{msgs[0]['content']}\n\n{preamble}"}
            else:
                msgs.insert(0, {"role": "system", "content": preamble})
            tools = None
        return self._template.render(
            messages=msgs, tools=tools, add_generation_prompt=True, bos_token=self._bos, eos_token=self._eos
        )

    # -- generation ---------------------------------------------------------------------------
    def _stream_tokens(
        self,
        tokens: list[int],
        *,
        temperature: float,
        max_tokens: int,
        grammar: llama_cpp.LlamaGrammar | None = None,
        stop: tuple[str, ...] = (),
    ) -> Iterator[tuple[str, str | None]]:
        """Yield (text delta, finish reason or None); the last item carries the finish reason."""
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        text, pending = "", ""
        self._generated = 0
        hold = max((len(s) for s in stop), default=0)
        vocab = self._llm._model.vocab
        stream = self._llm.generate(
            tokens, temp=temperature, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0, grammar=grammar, reset=True
        )
        for n, token in enumerate(stream, start=1):
            if llama_cpp.llama_token_is_eog(vocab, token):
                yield pending, "stop"
                return
            self._generated = n
            pending += decoder.decode(self._llm.detokenize([token]))
            for s in stop:
                if s in pending:
                    yield pending[: pending.index(s)], f"stop:{s}"
                    return
            if grammar is not None and _grammar_done(text + pending):
                yield pending, "grammar"
                return
            if n >= max_tokens:
                yield pending, "length"
                return
            if len(pending) > hold:
                cut = len(pending) - hold
                text += pending[:cut]
                yield pending[:cut], None
                pending = pending[cut:]
        yield pending, "stop"

    def stream(
        self,
        messages: list[dict[str, Any]],
        *,
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        stop: tuple[str, ...] = (),
    ) -> Iterator[str]:
        """Stream the text of a plain reply (no tools)."""
        with self.lock:
            self._llm.set_seed(self.seed if seed is None else seed)
            prompt = self.tokenize(self.render(messages))
            for delta, _ in self._stream_tokens(prompt, temperature=temperature, max_tokens=max_tokens, stop=stop):
                if delta:
                    yield delta

    def chat(
        self,
        messages: list[dict[str, Any]],
        *,
        tools: list[dict[str, Any]] | None = None,
        tool_choice: str | dict[str, Any] = "auto",
        temperature: float = 0.0,
        max_tokens: int = 512,
        seed: int | None = None,
        json_schema: dict[str, Any] | None = None,
        stop: tuple[str, ...] = (),
    ) -> ChatResult:
        """One assistant turn; with ``tools``, at most one grammar-constrained tool call."""
        t0 = time.perf_counter()
        offered = list(tools or [])
        if isinstance(tool_choice, dict):
            name = tool_choice.get("function", {}).get("name")
            offered = [t for t in offered if t.get("function", t).get("name") == name] or offered
        if tool_choice == "none":
            offered = []
        with self.lock:
            self._llm.set_seed(self.seed if seed is None else seed)
            prompt_text = self.render(messages, offered or None)
            prompt = self.tokenize(prompt_text)
            cached = self._cached_prefix(prompt)
            forced = bool(offered) and tool_choice != "auto"
            content, finish, used = "", "stop", 0
            if json_schema is not None:
                grammar = llama_cpp.LlamaGrammar.from_json_schema(json.dumps(json_schema), verbose=False)
                content, finish, used = self._run(prompt, temperature, max_tokens, grammar=grammar)
            elif not forced:
                triggers = (TOOL_OPEN,) if offered else ()
                content, finish, used = self._run(prompt, temperature, max_tokens, stop=stop + triggers)
            call = None
            if offered and (forced or finish == f"stop:{TOOL_OPEN}"):
                head = prompt + self.tokenize(content + TOOL_OPEN + "\n")
                grammar = llama_cpp.LlamaGrammar.from_json_schema(json.dumps(tool_call_schema(offered)), verbose=False)
                raw, finish, n = self._run(head, temperature, max_tokens, grammar=grammar)
                used += n
                try:
                    call = json.loads(raw, strict=False)
                except json.JSONDecodeError:  # cut off by max_tokens: the model's mistake, reported as text
                    content, finish = f"{content}{TOOL_OPEN}{raw}", "length"
            elif offered:
                call = parse_loose_tool_call(content, {t.get("function", t)["name"] for t in offered})
                content = "" if call else content
            finish = finish.split(":")[0] if finish != "grammar" else "stop"
        message: dict[str, Any] = {"role": "assistant", "content": content.strip() or None}
        if call is not None:
            message["tool_calls"] = [
                {
                    "id": f"call_{abs(hash((prompt_text, used))) % 10**10}",
                    "type": "function",
                    "function": {"name": call["name"], "arguments": json.dumps(call["arguments"], ensure_ascii=False)},
                }
            ]
            finish = "tool_calls"
        return ChatResult(
            message=message,
            finish_reason=finish,
            prompt_tokens=len(prompt),
            completion_tokens=used,
            seconds=time.perf_counter() - t0,
            cached_tokens=cached,
        )

    def _run(
        self,
        tokens: list[int],
        temperature: float,
        max_tokens: int,
        grammar: llama_cpp.LlamaGrammar | None = None,
        stop: tuple[str, ...] = (),
    ) -> tuple[str, str, int]:
        parts, finish = [], "stop"
        for delta, reason in self._stream_tokens(
            tokens, temperature=temperature, max_tokens=max_tokens, grammar=grammar, stop=stop
        ):
            parts.append(delta)
            if reason:
                finish = reason
        return "".join(parts), finish, self._generated

    def _cached_prefix(self, tokens: list[int]) -> int:
        cached = self._llm._input_ids[: self._llm.n_tokens]
        n = 0
        for a, b in zip(cached, tokens, strict=False):
            if a != b:
                break
            n += 1
        return n

    def reset(self) -> None:
        """Forget the KV cache. Seeded sampling (temperature > 0) repeats exactly only from the same cache
        state, because a cached prefix is decoded in different batches; greedy decoding repeats regardless."""
        with self.lock:
            self._llm.reset()

    def close(self) -> None:
        llm = getattr(self, "_llm", None)
        if llm is not None:
            llm.close()
            self._llm = None  # type: ignore[assignment]

    def __enter__(self) -> LocalLLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _grammar_done(text: str) -> bool:
    """A grammar-constrained JSON value is complete when its braces balance (strings respected)."""
    depth, in_str, esc, started = 0, False, False, False
    for ch in text:
        if in_str:
            esc = (ch == "\\") and not esc
            if ch == '"' and not esc:
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "{[":
            depth += 1
            started = True
        elif ch in "}]":
            depth -= 1
            if started and depth == 0:
                return True
    return False


_CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

_POOL: dict[tuple[str, int], LocalLLM] = {}
_POOL_LOCK = threading.Lock()


def shared(path: str | Path, *, n_ctx: int = 4096, n_threads: int | None = None, seed: int = 1234) -> LocalLLM:
    """One loaded instance per (file, context) in this process, shared by teacher and student users."""
    key = (str(Path(path).resolve()), n_ctx)
    with _POOL_LOCK:
        if key not in _POOL:
            _POOL[key] = LocalLLM(path, n_ctx=n_ctx, n_threads=n_threads, seed=seed)
        return _POOL[key]


def close_all() -> None:
    with _POOL_LOCK:
        for llm in _POOL.values():
            llm.close()
        _POOL.clear()
