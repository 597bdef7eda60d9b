"""The chat completion request ``agentkd serve`` accepts, as Pydantic models: anything else is a 400 naming the field.

Only the fields the student uses are checked closely; other OpenAI fields are accepted and ignored.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore")


class TextPart(_Strict):
    type: Literal["text"]
    text: str


class FunctionCall(_Strict):
    name: str = Field(min_length=1)
    arguments: str  # a JSON string, as the model wrote it


class ToolCall(_Strict):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Strict):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_validator(mode="after")
    def _shape(self) -> Message:
        if self.tool_calls and self.role != "assistant":
            raise ValueError(f"only assistant messages carry tool_calls, not {self.role} messages")
        if self.role == "tool" and not self.tool_call_id:
            raise ValueError("a tool message needs the tool_call_id of the call it answers")
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs content")
        return self

    def to_dict(self) -> dict[str, Any]:
        """The plain message the student reads: text content, developer folded into system."""
        text = self.content if not isinstance(self.content, list) else "".join(p.text for p in self.content)
        out: dict[str, Any] = {"role": "system" if self.role == "developer" else self.role, "content": text}
        if self.tool_calls:
            out["tool_calls"] = [c.model_dump() for c in self.tool_calls]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        if self.name:
            out["name"] = self.name
        return out


class FunctionSpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None


class ToolSpec(_Strict):
    type: Literal["function"]
    function: FunctionSpec


class ChosenFunction(_Strict):
    name: str


class NamedToolChoice(_Strict):
    type: Literal["function"]
    function: ChosenFunction


class StreamOptions(_Strict):
    include_usage: bool = False


class ChatRequest(BaseModel):
    """An OpenAI chat completion request; fields the student does not use are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = ""
    messages: list[Message] = Field(min_length=1)
    stream: bool = False
    tools: list[ToolSpec] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    temperature: float | None = Field(None, ge=0, le=2, allow_inf_nan=False)
    max_tokens: int | None = Field(None, gt=0, le=1_000_000)
    max_completion_tokens: int | None = Field(None, gt=0, le=1_000_000)
    seed: int | None = Field(None, ge=0, lt=2**32)  # llama.cpp's seed is 32 bits
    n: int | None = Field(None, ge=1, le=1)  # one model, one answer
    stream_options: StreamOptions | None = None

    @model_validator(mode="after")
    def _tools_and_choice(self) -> ChatRequest:
        names = [t.function.name for t in self.tools or []]
        if len(set(names)) < len(names):
            raise ValueError(f"tools: each function needs its own name, got {names}")
        choice = self.tool_choice
        if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
            raise ValueError(f"tool_choice names {choice.function.name!r}, which is not among the tools {names}")
        if choice == "required" and not names:
            raise ValueError("tool_choice 'required' needs tools")
        return self

    def message_dicts(self) -> list[dict[str, Any]]:
        return [m.to_dict() for m in self.messages]

    def tool_dicts(self) -> list[dict[str, Any]] | None:
        return [t.model_dump(exclude_none=True) for t in self.tools] if self.tools else None

    def choice(self) -> str | dict[str, Any]:
        choice = self.tool_choice or "auto"
        return choice if isinstance(choice, str) else choice.model_dump()


def problems(exc: ValidationError) -> tuple[str, str]:
    """The failing fields as ``messages[0].role: Field required; ...`` and the first field's name."""
    seen: dict[str, str] = {}
    for err in exc.errors(include_url=False):
        param = _param(err["loc"])
        if err["type"] == "json_invalid":
            seen.setdefault("body", f"the body is not valid JSON ({err['msg']})")
        elif param not in seen:
            seen[param] = err["msg"].removeprefix("Value error, ")
    text = "; ".join(f"{p}: {m}" if p else m for p, m in list(seen.items())[:4])
    return text, next(iter(seen), "")


_TYPE_TAGS = frozenset({"str", "int", "float", "bool", "bytes", "dict", "list", "none"})


def _param(loc: tuple[int | str, ...]) -> str:
    """``("messages", 0, "role")`` as ``messages[0].role``, leaving out the union members pydantic names."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier() and not part[:1].isupper() and part not in _TYPE_TAGS:
            out += ("." if out else "") + part
    return out
