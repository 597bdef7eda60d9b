"""A chatbot that talks to ``agentkd serve`` with the official ``openai`` client.

    agentkd serve --port 8000 &                      # in another terminal
    python examples/chatbot_server.py                # the student's own tools and library, streamed
    python examples/chatbot_server.py --client-tools # offer a tool that runs *here*, in the client

Without ``tools`` in the request the server runs the student's tools (python, calculator) and applies
the library; the strategies it used come back in the extra ``agentkd`` field of the last chunk. With
``tools``, the model's calls come back as ``tool_calls``: the client runs them and sends the results.
"""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any, cast

from openai import OpenAI

CLOCK = {
    "type": "function",
    "function": {
        "name": "current_time",
        "description": "The current local date and time.",
        "parameters": {"type": "object", "properties": {}},
    },
}


def run_client_tool(name: str, arguments: str) -> str:
    if name == "current_time":
        return datetime.now().isoformat(timespec="minutes")
    return f"Error: unknown tool {name!r}"


def streamed_turn(client: OpenAI, model: str, history: list[dict[str, Any]]) -> str:
    """The student's own tools: stream the worked answer, then list the strategies it used."""
    text, extra = [], None
    for chunk in client.chat.completions.create(model=model, messages=cast(Any, history), stream=True):
        if chunk.choices and chunk.choices[0].delta.content:
            print(chunk.choices[0].delta.content, end="", flush=True)
            text.append(chunk.choices[0].delta.content)
        extra = (chunk.model_extra or {}).get("agentkd") or extra
    if extra and extra["strategies"]:
        print("\n  [strategies: " + ", ".join(s["title"] for s in extra["strategies"]) + "]", end="")
    print()
    return str(extra["answer"]) if extra else "".join(text)


def client_tool_turn(client: OpenAI, model: str, history: list[dict[str, Any]]) -> str:
    """Client tools: run each call the model makes here and send the result back, until it answers."""
    for _ in range(4):
        res = client.chat.completions.create(model=model, messages=cast(Any, history), tools=cast(Any, [CLOCK]))
        message = res.choices[0].message
        if not message.tool_calls:
            print(message.content)
            return message.content or ""
        history.append(message.model_dump(exclude_none=True))
        for call in message.tool_calls:
            result = run_client_tool(call.function.name, call.function.arguments)  # type: ignore[union-attr]
            print(f"  [{call.function.name}({call.function.arguments}) → {result}]")  # type: ignore[union-attr]
            history.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    return ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8000/v1")
    parser.add_argument("--client-tools", action="store_true", help="offer a clock tool run by this client")
    parser.add_argument("--once", help="send this one message and exit")
    args = parser.parse_args()
    client = OpenAI(base_url=args.base_url, api_key="not-needed")
    model = client.models.list().data[0].id
    history: list[dict[str, Any]] = []
    lines = [args.once] if args.once else iter(lambda: input("you> "), None)
    try:
        for line in lines:
            if line.strip() in {"/exit", "/quit"}:
                break
            history.append({"role": "user", "content": line})
            turn = client_tool_turn if args.client_tools else streamed_turn
            history.append({"role": "assistant", "content": turn(client, model, history)})
    except (EOFError, KeyboardInterrupt):
        print()


if __name__ == "__main__":
    main()
