"""The distillation loop as a LangGraph graph (the one module that imports langgraph).

START → plan ─(budget left)→ generate_scenarios ─(one branch per scenario)→ scenario → update_curriculum
          └─(stop)→ END                                                              ├─(more rounds)→ plan
                                                                                     └─(done)→ END
scenario:  attempt → judge ─(failed)→ write_strategy → admit
                           └─(passed)────────────────→ admit

The branches of a round run in parallel (``Send``), up to ``teacher_concurrency`` at once: the teacher
writes for one failure while the student attempts another scenario or measures an earlier candidate.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send

from agentkd.distill.checkpoints import RESTART_HINT
from agentkd.distill.nodes import (
    BuildContext,
    BuildState,
    Nodes,
    ScenarioOutput,
    ScenarioState,
    fan_out,
    route_after_judge,
    should_continue,
)
from agentkd.errors import RunStateError


def build_graph(ctx: BuildContext, checkpointer: Any = None, nodes: Nodes | None = None) -> Any:
    """Compile the loop for ``ctx``; pass a checkpointer to make runs resumable."""
    nodes = nodes or Nodes(ctx)
    iterations = ctx.config.iterations

    def route_after_plan(state: BuildState) -> Literal["generate_scenarios", "__end__"]:
        return "__end__" if state.stop_reason else "generate_scenarios"

    def branches(state: BuildState) -> list[Send] | Literal["update_curriculum"]:
        return [Send("scenario", s.model_dump()) for s in fan_out(state)] or "update_curriculum"

    def route_after_update_curriculum(state: BuildState) -> Literal["plan", "__end__"]:
        return "plan" if should_continue(state, iterations) else "__end__"

    scenario = StateGraph(ScenarioState, output_schema=ScenarioOutput)
    scenario.add_node("attempt", nodes.attempt)
    scenario.add_node("judge", nodes.judge)
    scenario.add_node("write_strategy", nodes.write_strategy)
    scenario.add_node("admit", nodes.admit)
    scenario.add_edge(START, "attempt")
    scenario.add_edge("attempt", "judge")
    scenario.add_conditional_edges("judge", route_after_judge)
    scenario.add_edge("write_strategy", "admit")
    scenario.add_edge("admit", END)

    g = StateGraph(BuildState)
    g.add_node("plan", nodes.plan)
    g.add_node("generate_scenarios", nodes.generate_scenarios)
    g.add_node("scenario", scenario.compile())
    g.add_node("update_curriculum", nodes.update_curriculum)

    g.add_edge(START, "plan")
    g.add_conditional_edges("plan", route_after_plan)
    g.add_conditional_edges("generate_scenarios", branches, ["scenario", "update_curriculum"])
    g.add_edge("scenario", "update_curriculum")
    g.add_conditional_edges("update_curriculum", route_after_update_curriculum)
    return g.compile(checkpointer=checkpointer)


@contextmanager
def sqlite_checkpointer(path: str | Path) -> Iterator[Any]:
    """A SQLite checkpointer at ``path`` (created if needed), closed on exit."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(path), check_same_thread=False)
    try:
        yield SqliteSaver(conn)
    finally:
        conn.close()


def run(ctx: BuildContext, *, checkpointer: Any = None, thread_id: str = "build", resume: bool = False) -> BuildState:
    """Run the loop to the end and return its final state.

    With ``resume``, continue the thread from its last checkpoint (after a crash or ``kill -9``): branches
    that finished are not run again, the one that was interrupted is, and admission is idempotent, so
    nothing is lost or duplicated.
    """
    nodes = Nodes(ctx)
    graph = build_graph(ctx, checkpointer, nodes)
    in_flight = max(ctx.config.teacher_concurrency, ctx.config.student_concurrency, 1)
    config: Any = {"configurable": {"thread_id": thread_id}, "recursion_limit": 10_000, "max_concurrency": in_flight}
    if resume and checkpointer is not None:
        saved = graph.get_state(config)
        if not saved.values:
            raise RunStateError(f"there is no checkpoint of run {thread_id} to resume.", hint=RESTART_HINT)
        if not saved.next:  # the loop had finished (killed during the held-out measurement): do not run it again
            return BuildState.model_validate(saved.values)
        granted = writes_granted(graph.get_state(config, subgraphs=True))  # the round's cap counts on
        nodes.resume_writes(int(saved.values.get("iteration", 0)), granted)
        return BuildState.model_validate(graph.invoke(None, config))
    return BuildState.model_validate(graph.invoke(BuildState(), config))


def writes_granted(saved: Any) -> int:
    """The writes the round in progress had granted when it was killed: branches that finished say so in
    their outcome, a branch cut short after its judge in its own checkpointed state."""
    granted = 0
    for task in saved.tasks:
        if task.name != "scenario":
            continue
        if isinstance(task.result, dict):  # finished: its outcome waits in the checkpoint's pending writes
            granted += sum(bool(dict(o).get("wrote") if isinstance(o, dict) else o.wrote)
                           for o in task.result.get("outcomes") or [])
        elif task.state is not None and not isinstance(task.state, dict):  # cut short: the branch's own state
            granted += bool((getattr(task.state, "values", None) or {}).get("write"))
    return granted


def mermaid(ctx: BuildContext) -> str:
    """The graph's topology, branches included, as Mermaid text (snapshot-tested so it cannot drift silently)."""
    return str(build_graph(ctx).get_graph(xray=True).draw_mermaid())
