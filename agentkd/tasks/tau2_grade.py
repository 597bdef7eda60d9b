"""tau2's grading of one episode, re-implemented on our transcript and database.

Follows ``tau2/evaluator``: the reward is the product over the task's ``reward_basis`` (default
DB and COMMUNICATE) of
- DB: the expected actions are replayed on a fresh database and its hash is compared with the hash of
  the database after replaying the agent's tool calls (``evaluator_env.py``);
- COMMUNICATE: every ``communicate_info`` string appears, case-insensitively and with commas removed
  from the message, in some agent message (``evaluator_communicate.py``);
- ACTION: every expected action matches some tool call by name and arguments (``evaluator_action.py``);
and is 0 when the episode did not end with a stop signal from the customer or the agent
(``evaluator.py``). The action-level score, for students too small to pass, is the fraction of
expected actions matched plus required outputs given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agentkd.schema import Attempt, Message, ToolCallRecord, Verdict
from agentkd.tasks.tau2_tools import RetailTools, db_hash

STOP, TRANSFER, OUT_OF_SCOPE = "###STOP###", "###TRANSFER###", "###OUT-OF-SCOPE###"
USER_STOPS = (STOP, TRANSFER, OUT_OF_SCOPE)


def termination(transcript: list[Message]) -> str:
    """How an episode ended: user_stop, agent_stop, incomplete (turn or context limit, empty reply), none."""
    if not transcript:
        return "none"  # a bare text answer, not an episode
    last = transcript[-1]
    content = str(last.get("content") or "")
    if last.get("role") == "user" and any(token in content for token in USER_STOPS):
        return "user_stop"
    if last.get("role") == "assistant" and not last.get("tool_calls") and STOP in content:
        return "agent_stop"
    return "incomplete"


def action_matches(action: dict[str, Any], call: ToolCallRecord) -> bool:
    """tau2's ``Action.compare_with_tool_call``: same name, and the same values on the compared arguments."""
    if action["name"] != call.name:
        return False
    keys = action.get("compare_args")
    keys = list(call.arguments) if keys is None else keys
    if not keys:
        return True
    expected = action.get("arguments") or {}
    return {k: v for k, v in call.arguments.items() if k in keys} == {k: v for k, v in expected.items() if k in keys}


def agent_texts(attempt: Attempt) -> list[str]:
    """What the agent said to the customer (the bare answer when there is no transcript)."""
    if not attempt.transcript:
        return [attempt.answer]
    return [str(m["content"]) for m in attempt.transcript if m.get("role") == "assistant" and m.get("content")]


def expected_db_hash(task: dict[str, Any], make_env: Callable[[], RetailTools]) -> str | None:
    """The hash of the database after the expected actions; None when the task checks no database."""
    criteria = task["evaluation_criteria"]
    if criteria.get("actions") is None and criteria.get("env_assertions") is None:
        return None
    gold = make_env()
    for action in criteria.get("actions") or []:
        try:
            gold.call(action["name"], action.get("arguments") or {})
        except Exception:  # tau2 logs a warning and goes on: some expected actions fail by design
            continue
    return db_hash(gold.db)


def attempt_db_hash(attempt: Attempt, make_env: Callable[[], RetailTools]) -> str:
    """The hash of the database after replaying the agent's tool calls through the same tools."""
    predicted = make_env()
    box = predicted.toolbox()
    for call in attempt.tool_calls:
        box.run(call.name, call.arguments)  # a call that failed in the episode fails again, changing nothing
    return db_hash(predicted.db)


def grade_episode(
    task: dict[str, Any], attempt: Attempt, make_env: Callable[[], RetailTools], expected_hash: str | None = ""
) -> Verdict:
    """pass^1 (``correct``) and the action-level score (``score``), with the reasons.

    ``expected_hash`` is ``expected_db_hash(task, make_env)`` when the caller has it cached.
    """
    criteria = task.get("evaluation_criteria")
    if criteria is None:
        return Verdict(correct=True, score=1.0, reasons="the task has no evaluation criteria")
    basis = set(criteria.get("reward_basis") or ["DB", "COMMUNICATE"])
    ended = termination(attempt.transcript)
    if expected_hash == "":
        expected_hash = expected_db_hash(task, make_env)
    db_ok = expected_hash is None or expected_hash == attempt_db_hash(attempt, make_env)
    texts = [t.lower().replace(",", "") for t in agent_texts(attempt)]
    infos = list(criteria.get("communicate_info") or [])
    said = [info for info in infos if any(info.lower() in t for t in texts)]
    actions = list(criteria.get("actions") or [])
    taken = [a for a in actions if any(action_matches(a, c) for c in attempt.tool_calls)]

    reward = 1.0 if ended in ("user_stop", "agent_stop", "none") else 0.0
    if basis & {"DB", "ENV_ASSERTION"}:
        reward *= float(db_ok)
    if "COMMUNICATE" in basis:
        reward *= float(len(said) == len(infos))
    if "ACTION" in basis:
        reward *= float(len(taken) == len(actions))
    notes = [] if basis <= {"DB", "ENV_ASSERTION", "COMMUNICATE", "ACTION"} else ["NL assertions not graded"]
    if "ENV_ASSERTION" in basis and criteria.get("env_assertions"):
        notes.append("env assertions not graded")

    total = len(actions) + len(infos)
    score = (len(taken) + len(said)) / total if total else reward
    missing = [f"{a['name']}({', '.join(f'{k}={v!r}' for k, v in (a.get('arguments') or {}).items())})"
               for a in actions if a not in taken]
    reasons = [
        f"pass^1={int(reward)} (ended: {ended}; database "
        f"{'matches' if db_ok else 'differs from'} the expected end state)",
        f"actions {len(taken)}/{len(actions)} taken with matching arguments",
    ]
    if missing:
        reasons.append("missing: " + "; ".join(missing[:4]) + (" ..." if len(missing) > 4 else ""))
    if infos:
        unsaid = [i for i in infos if i not in said]
        reasons.append(f"outputs {len(said)}/{len(infos)} given" + (f" (not said: {'; '.join(unsaid)})" * bool(unsaid)))
    return Verdict(correct=reward == 1.0, score=score, reasons="; ".join(reasons + notes))
