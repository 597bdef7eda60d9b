"""A small chatbot that embeds the student through the Python API (no server).

    python examples/chatbot.py                              # default student, library in ~/.agentkd/library
    python examples/chatbot.py --student /path/model.gguf --no-library
    python examples/chatbot.py --once "What is 17 * 23 + 5?"

It keeps the conversation itself, streams each turn with ``Student.chat(..., stream=True)``, and shows
which strategies were retrieved and which tools ran.
"""

from __future__ import annotations

import argparse
import sys

from agentkd.config import get_settings
from agentkd.student.agent_loop import Done, StrategiesRetrieved, TextDelta, ToolCallFinished
from agentkd.student.student import Student


def make_student(model: str | None, use_library: bool) -> Student:
    settings = get_settings(student=model)
    retriever = None
    if use_library:
        from agentkd.library import Library

        retriever = Library.open(settings.library_path, settings.collection)
    return Student(settings.student, retriever=retriever, n_ctx=settings.n_ctx)


def turn(student: Student, history: list[dict[str, str]]) -> str:
    """Stream one turn to stdout and return the final answer."""
    answer = ""
    for event in student.chat(history, stream=True):
        match event:
            case StrategiesRetrieved(strategies=found) if found:
                print("  [strategies: " + ", ".join(f"{s.title} ({score:.2f})" for s, score in found) + "]")
            case TextDelta(text=text):
                print(text, end="", flush=True)
            case ToolCallFinished(record=call):
                print(f"\n  [{call.name} → {call.result.strip()[:200]}]")
            case Done(answer=done):
                answer = done.text
                print(f"\n  [{done.completion_tokens} tokens in {done.seconds:.1f}s]")
    return answer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--student", help="catalog name or .gguf path (default: AGENTKD_STUDENT or the catalog's)")
    parser.add_argument("--no-library", action="store_true", help="answer without strategies")
    parser.add_argument("--once", help="answer this one message and exit")
    args = parser.parse_args()
    student = make_student(args.student, not args.no_library)
    history: list[dict[str, str]] = []
    lines = [args.once] if args.once else iter(lambda: input("you> "), None)
    try:
        for line in lines:
            if line.strip() in {"/exit", "/quit"}:
                break
            if line.strip() == "/reset":
                history.clear()
                continue
            history.append({"role": "user", "content": line})
            history.append({"role": "assistant", "content": turn(student, history)})
    except (EOFError, KeyboardInterrupt):
        print(file=sys.stderr)


if __name__ == "__main__":
    main()
