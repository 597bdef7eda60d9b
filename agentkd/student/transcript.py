"""A turn's events as one readable text: the model's words, each tool's output, the final answer.

The server streams these pieces as ``content`` and the chat REPL prints them, so both show the same thing.
"""

from __future__ import annotations

import json

from agentkd.student.agent_loop import Event, TextDelta, ToolCallFinished


class Transcript:
    """Accumulates the text shown for a turn; ``add`` returns the piece an event contributes."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self._step = -1
        self._step_text = ""

    @property
    def text(self) -> str:
        return "".join(self.parts).strip()

    def add(self, event: Event) -> str:
        piece = ""
        if isinstance(event, TextDelta):
            if event.step != self._step:
                self._step, self._step_text = event.step, ""
                piece = "\n\n" if self.parts else ""
            self._step_text += event.text
            piece += event.text
        elif isinstance(event, ToolCallFinished):
            piece = tool_piece(event, self._step_text if event.step == self._step else "")
        if piece:
            self.parts.append(piece)
        return piece


def tool_piece(event: ToolCallFinished, step_text: str) -> str:
    """How a finished tool call reads: a closed code block and its output, or the call and its result."""
    record = event.record
    label = "Error" if record.error else "Output"
    if event.code:
        close = "" if step_text.rstrip().endswith("```") else "\n```"
        return f"{close}\n\n{label}:\n```\n{record.result.strip()}\n```"
    args = json.dumps(record.arguments, ensure_ascii=False)
    return f"\n\n`{record.name}({args})` → {label.lower()}: {record.result.strip()}"
