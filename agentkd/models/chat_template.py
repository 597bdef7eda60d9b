"""Chat as data and text: results and timings, the GGUF's chat template, the tool-call grammar's schema, parsing.

Kept apart from ``engine`` so it can be read and tested without llama.cpp; it needs only the standard
library and jinja2 (which llama-cpp-python installs), so edge devices can use it too.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from agentkd.chat import ChatResult, final_result

__all__ = ["ChatResult", "final_result"]  # their home is agentkd.chat; many callers import them from here

TOOL_OPEN, TOOL_CLOSE = "<tool_call>", "</tool_call>"

_TOOL_PREAMBLE = (
    "# Tools\n\nYou may call one of these functions. Signatures:\n<tools>\n{tools}\n</tools>\n\n"
    'To call one, reply with\n<tool_call>\n{{"name": <function-name>, "arguments": <args-json-object>}}\n'
    "</tool_call>"
)

CHATML = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


@dataclass
class CallStats:
    """Counters of one chat call, shared by its phases (free text, then maybe a tool call)."""

    start: float = field(default_factory=time.perf_counter)
    generated: int = 0
    cached: int | None = None
    first_token: float | None = None
    prefill: float = 0.0
    rejections: int = 0

    def timings(self, end: float) -> dict[str, float]:
        first = self.first_token or end
        return {
            "ttft": first - self.start,
            "prefill": self.prefill,
            "decode_tps": (self.generated - 1) / (end - first) if self.generated > 1 and end > first else 0.0,
            "grammar_rejections": float(self.rejections),
        }


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


def tool_name(tool: dict[str, Any]) -> str:
    """The name of an OpenAI tool definition (or of a bare function definition)."""
    return str(tool.get("function", tool)["name"])


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


class ChatTemplate:
    """A model's Jinja chat template (as Hugging Face renders it), with a tool preamble for templates without tools."""

    def __init__(self, source: str | None, *, bos: str = "", eos: str = "") -> None:
        source = source or CHATML
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, undefined=jinja2.Undefined)
        env.filters["tojson"] = lambda v, indent=None: json.dumps(v, ensure_ascii=False, indent=indent)
        self._template = env.from_string(source)
        self.has_tools = "tools" in source
        self.bos, self.eos = bos, eos

    def render(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
        msgs = _as_template_messages(messages)
        if not self.has_tools:
            msgs = _inline_tool_turns(msgs)
        if tools and not self.has_tools:
            preamble = _TOOL_PREAMBLE.format(tools="\n".join(json.dumps(t) for t in tools))
            if msgs and msgs[0]["role"] == "system":
                msgs[0] = {**msgs[0], "content": f"{msgs[0]['content']}\n\n{preamble}"}
            else:
                msgs.insert(0, {"role": "system", "content": preamble})
            tools = None
        return self._template.render(
            messages=msgs, tools=tools, add_generation_prompt=True, bos_token=self.bos, eos_token=self.eos
        )


_JSON_BLOCK = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.S)


_CALL_START = re.compile(r'\{\s*"name"\s*:')


def parse_loose_tool_call(text: str, names: set[str]) -> dict[str, Any] | None:
    """Recover a tool call the model wrote as JSON instead of ``<tool_call>``: in a block, bare, or repeated.

    The first complete ``{"name": ..., "arguments": {...}}`` object naming an offered tool wins.
    """
    decoder = json.JSONDecoder(strict=False)
    starts = [m.start() for m in _CALL_START.finditer(text)]
    for candidate in [*_JSON_BLOCK.findall(text), *(text[i:] for i in starts)]:
        try:
            obj, _ = decoder.raw_decode(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict) and obj.get("name") in names and isinstance(obj.get("arguments"), dict):
            return obj
    return None


def json_value_done(text: str) -> bool:
    """A grammar-constrained JSON value is complete when its braces balance (strings respected)."""
    depth, in_str, esc, started = 0, False, False, False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
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
