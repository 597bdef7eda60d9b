"""BFCL (Berkeley Function Calling Leaderboard) simple and multiple as a task source.

Each item is a question and the documentation of one (simple) or several (multiple) functions. The
student is offered the functions as OpenAI tools, converted the way BFCL converts them for
function-calling models (``bfcl_eval/model_handler/utils.py: convert_to_tool`` with
``GORILLA_TO_OPENAPI``), and its answer is the tool call it makes; nothing is executed. The call is
graded by BFCL's AST checker (``bfcl_checker``) against the item's possible answers. A reply in text
is decoded as Python call syntax, as BFCL does for prompting models, so ``check`` grades text too.

BFCL has no train/test split: a salted hash of each item's id puts it in train, validation or held-out
(55/15/30 by default), independent of any seed, so builds never see validation or held-out items; the
validation split is the pack gate's.
"""

from __future__ import annotations

import ast
import copy
import json
import random
import re
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from agentkd.errors import TaskError
from agentkd.prompts import render
from agentkd.schema import Attempt, Message, Scenario, Strategy, ToolCallRecord, Verdict
from agentkd.tasks.base import Split, Task, package_dir, split_of
from agentkd.tasks.bfcl_checker import ast_checker, fc_name
from agentkd.tasks.episode import Stopwatch, StudentLike, chat, choose_strategies

INSTALL = "bfcl-eval==2026.3.23"
FILES = {  # our category name -> BFCL v4 file (Python; the same format for the live variants)
    "simple": "BFCL_v4_simple_python.json",
    "multiple": "BFCL_v4_multiple.json",
    "live_simple": "BFCL_v4_live_simple.json",
    "live_multiple": "BFCL_v4_live_multiple.json",
}
GORILLA_TO_OPENAPI = {  # bfcl_eval/constants/type_mappings.py (the Python types)
    "integer": "integer", "number": "number", "float": "number", "string": "string", "boolean": "boolean",
    "bool": "boolean", "array": "array", "list": "array", "dict": "object", "object": "object",
    "tuple": "array", "any": "string",
}
_FENCE = re.compile(r"```(?:python|json|tool_code)?\s*(.*?)```", re.S)


def _cast_properties(properties: dict[str, Any]) -> dict[str, Any]:
    """BFCL's ``_cast_to_openai_type``: map its types to JSON-schema ones, recursing into nested schemas."""
    for value in properties.values():
        kind = value.get("type")
        if kind == "float":
            value["format"] = "float"
            value["description"] = f"{value.get('description', '')} This is a float type value.".strip()
        value["type"] = GORILLA_TO_OPENAPI.get(kind, "string") if kind else "string"
        if value["type"] in ("array", "object"):
            if "properties" in value:
                value["properties"] = _cast_properties(value["properties"])
            elif "items" in value:
                items = value["items"]
                items["type"] = GORILLA_TO_OPENAPI.get(items.get("type", "string"), "string")
                if items["type"] == "array" and "items" in items:
                    items["items"]["type"] = GORILLA_TO_OPENAPI.get(items["items"].get("type", "string"), "string")
                elif items["type"] == "object" and "properties" in items:
                    items["properties"] = _cast_properties(items["properties"])
    return properties


def to_openai_tools(functions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """BFCL function docs as OpenAI tool definitions (dots in names become underscores)."""
    tools = []
    for fn in copy.deepcopy(functions):
        params = fn.get("parameters") or {}
        params["type"] = "object"
        params["properties"] = _cast_properties(params.get("properties") or {})
        params.setdefault("required", [])
        described = {"name": fc_name(fn["name"]), "description": fn.get("description", ""), "parameters": params}
        tools.append({"type": "function", "function": described})
    return tools


def signature(fn: dict[str, Any]) -> str:
    """A one-line signature of a BFCL function doc, for people and the teacher."""
    props = (fn.get("parameters") or {}).get("properties") or {}
    required = set((fn.get("parameters") or {}).get("required") or [])
    args = ", ".join(f"{k}: {v.get('type', 'any')}{'' if k in required else ' = optional'}" for k, v in props.items())
    return f"{fc_name(fn['name'])}({args}) - {fn.get('description', '')}"


def call_text(name: str, arguments: dict[str, Any]) -> str:
    """A call in Python syntax, e.g. ``math_factorial(number=5)``."""
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in arguments.items())})"


def ground_truth_call(answer: dict[str, dict[str, list[Any]]]) -> dict[str, dict[str, Any]]:
    """One correct call from a possible answer: the first accepted value of each argument, optional ones left out."""
    def pick(options: list[Any]) -> Any:
        return one(options[0])

    def one(value: Any) -> Any:  # a dict's values and a list of dicts' items are lists of options again
        if isinstance(value, dict) and all(isinstance(v, list) for v in value.values()):
            return {k: pick(v) for k, v in value.items() if v and v[0] != ""}
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            return [one(v) for v in value]
        return value

    name, params = next(iter(answer.items()))
    return {fc_name(name): {k: pick(v) for k, v in params.items() if v and v[0] != ""}}


def parse_calls(text: str) -> list[dict[str, dict[str, Any]]]:
    """Calls written as text: JSON ``{"name", "arguments"}`` objects or Python call syntax; [] if none parse."""
    body = (m.group(1) if (m := _FENCE.search(text)) else text).strip()
    try:
        data = json.loads(body)
        items = data if isinstance(data, list) else [data]
        if all(isinstance(i, dict) and "name" in i and isinstance(i.get("arguments"), dict) for i in items):
            return [{fc_name(str(i["name"])): dict(i["arguments"])} for i in items]
    except json.JSONDecodeError:
        pass
    try:
        tree = ast.parse(body.strip("'"), mode="eval").body
    except SyntaxError:
        return []
    nodes = tree.elts if isinstance(tree, ast.List | ast.Tuple) else [tree]
    calls = []
    for node in nodes:
        if not isinstance(node, ast.Call) or node.args:
            return []
        try:
            calls.append({fc_name(ast.unparse(node.func)): {k.arg: ast.literal_eval(k.value) for k in node.keywords
                                                            if k.arg is not None}})
        except ValueError:  # a non-literal argument (a variable or an expression)
            return []
    return calls


def _shape(fn: dict[str, Any] | None) -> str:
    kinds = {v.get("type") for v in ((fn or {}).get("parameters") or {}).get("properties", {}).values()}
    if kinds & {"array", "dict", "tuple", "list", "object"}:
        return "structured"
    return "float" if "float" in kinds else "scalar"


class BfclTask(Task):
    """BFCL simple / multiple: one function call per question, graded by BFCL's AST checker."""

    instructions = "Answer with one call of the right function, written as name(argument=value, ...)."
    example_form = "answer"  # a worked example is a verified call: the request, its functions and the call
    example_covers_category = False  # a category is an argument shape: one example does not cover it
    strategy_focus = (
        "The student answers with one call of one of the offered functions; nothing is executed and it has no "
        "Python tool, so the lesson is how to choose the function and fill its arguments, not how to compute the "
        "result. Typical mistakes: a similar but wrong function, a required argument left out, an argument the "
        "function does not have, a value of the wrong type or format, a value not taken exactly from the request."
    )

    validation_split = True

    def __init__(self, category: str = "simple", *, train_fraction: float = 0.7, validation_fraction: float = 0.15,
                 force_call: bool = False, data_dir: str | Path | None = None) -> None:
        if category not in FILES:
            raise TaskError(f"unknown BFCL category {category!r}", hint=f"use one of: {', '.join(FILES)}")
        self.category, self.name = category, f"bfcl:{category}"
        self.train_fraction, self.validation_fraction, self.force_call = train_fraction, validation_fraction, force_call
        self.dir = Path(data_dir) if data_dir else package_dir("bfcl_eval", INSTALL) / "data"

    @cached_property
    def items(self) -> dict[str, dict[str, Any]]:
        """BFCL's items by id, each with its ``ground_truth`` from ``possible_answer/``."""
        def read(path: Path) -> list[dict[str, Any]]:
            return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

        items = {i["id"]: i for i in read(self.dir / FILES[self.category])}
        for answer in read(self.dir / "possible_answer" / FILES[self.category]):
            if answer["id"] in items:
                items[answer["id"]]["ground_truth"] = answer["ground_truth"]
        return {k: v for k, v in items.items() if "ground_truth" in v}

    def item(self, scenario: Scenario) -> dict[str, Any]:
        try:
            return self.items[str(scenario.metadata["bfcl_id"])]
        except KeyError:
            raise TaskError(f"scenario {scenario.id!r} is not an item of {self.name}",
                            hint="grade a scenario with the task source that made it") from None

    def scenario(self, item_id: str) -> Scenario:
        item = self.items[item_id]
        question = "\n".join(m["content"] for m in item["question"][0] if m["role"] == "user")
        expected = next(iter(item["ground_truth"][0]))
        truth = ground_truth_call(item["ground_truth"][0])
        split = self._split(item_id)
        functions = "\n".join(f"- {signature(fn)}" for fn in item["function"])
        return Scenario(
            id=f"bfcl-{item_id}",
            task=self.name,
            question=f"{question}\n\nFunctions:\n{functions}",
            answer=call_text(*next(iter(truth.items()))),
            category=f"{self.category}:{_shape(next((f for f in item['function'] if f['name'] == expected), None))}",
            difficulty=min(3, 1 + len(next(iter(truth.values()))) // 3),
            metadata={"bfcl_id": item_id, "split": split},
        )

    def scenarios(self, split: Split, n: int, seed: int) -> list[Scenario]:
        """``n`` items of the split, in a seeded order."""
        want = "heldout" if split.startswith("heldout") else split
        ids = sorted(i for i in self.items if self._split(i) == want)
        random.Random(seed).shuffle(ids)
        return [self.scenario(i) for i in ids[:n]]

    def _split(self, item_id: str) -> Split:
        return split_of(item_id, train_fraction=self.train_fraction, validation_fraction=self.validation_fraction)

    def scenarios_for(self, category: str, n: int, seed: int, difficulty: int = 1) -> list[Scenario]:
        pool = [sc for sc in self.scenarios("train", len(self.items), seed) if sc.category == category]
        return sorted(pool, key=lambda sc: abs(sc.difficulty - difficulty))[:n]

    def siblings(self, scenario: Scenario, k: int, seed: int) -> list[Scenario]:
        return [sc for sc in self.scenarios_for(scenario.category, k + 1, seed, scenario.difficulty)
                if sc.id != scenario.id][:k]

    def tools_for(self, scenario: Scenario) -> list[dict[str, Any]]:
        """The item's functions as OpenAI tools."""
        return to_openai_tools(self.item(scenario)["function"])

    def run(self, student: StudentLike, scenario: Scenario, *, instructions: str = "",
            strategies: Sequence[Strategy] | None = None) -> Attempt:
        """One function-calling turn: the question with the functions offered as tools; nothing is executed."""
        clock, item = Stopwatch(), self.item(scenario)
        question = [dict(m) for m in item["question"][0]]
        # retrieved by the request and its functions: the text a worked example's question holds
        chosen = choose_strategies(student, scenario.question, scenario.task, strategies)
        system = [{"role": "system", "content": render("bfcl_system.md", strategies=[s.render() for s in chosen])}]
        return self.reply_to(student, scenario, [*(system if chosen else []), *question],
                             strategy_ids=[s.id for s in chosen], clock=clock)

    def reply_to(self, student: StudentLike, scenario: Scenario, messages: list[Message], *,
                 strategy_ids: Sequence[str] = (), clock: Stopwatch | None = None) -> Attempt:
        """The student's call for ``messages`` (ending with the request) with the item's functions offered as
        tools; ``run`` builds the messages, a probe may build others. Nothing is executed."""
        clock = clock or Stopwatch()
        result = chat(student, messages, self.tools_for(scenario), purpose="bfcl",
                      tool_choice="required" if self.force_call else "auto")
        calls, answer = [], ""
        if result is not None:
            messages.append(result.message)
            for call in result.message.get("tool_calls") or []:
                args = json.loads(call["function"]["arguments"])
                calls.append(ToolCallRecord(name=call["function"]["name"], arguments=args,
                                            result="(not executed: BFCL grades the call itself)"))
            text = str(result.message.get("content") or "")
            answer = "\n".join(call_text(c.name, c.arguments) for c in calls) or text
        return Attempt(scenario_id=scenario.id, answer=answer, tool_calls=calls, strategy_ids=list(strategy_ids),
                       transcript=messages, completion_tokens=result.completion_tokens if result else 0,
                       seconds=clock.seconds)

    def grade(self, scenario: Scenario, attempt: Attempt) -> Verdict:
        """BFCL's AST check of the attempt's tool calls (or of calls written in its answer)."""
        calls = [{c.name: c.arguments} for c in attempt.tool_calls] or parse_calls(attempt.answer)
        return self._verdict(scenario, calls)

    def check(self, scenario: Scenario, answer: str) -> Verdict:
        return self._verdict(scenario, parse_calls(answer))

    def _verdict(self, scenario: Scenario, calls: list[dict[str, dict[str, Any]]]) -> Verdict:
        item = self.item(scenario)
        result = ast_checker(item["function"], calls, item["ground_truth"], self.category)
        if result["valid"]:
            return Verdict(correct=True, score=1.0, reasons="the call matches a possible answer (BFCL AST check)")
        errors = "; ".join(str(e) for e in result.get("error", []))[:600]
        return Verdict(correct=False, score=0.0, reasons=f"{result.get('error_type', 'invalid')}: {errors}; "
                                                         f"expected e.g. {scenario.answer}")
