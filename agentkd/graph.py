"""The distillation loop as a LangGraph graph (the one module that imports langgraph).

START → generate_scenarios → attempt → judge ─(failures)→ write_strategy → admit ─(more)→ generate_scenarios
                                          └───(all passed)──────────────────→ admit ─(done)→ END
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, StateGraph

from agentkd.nodes import BuildContext, BuildState, Nodes, route_after_judge, should_continue


def build_graph(ctx: BuildContext, checkpointer: Any = None) -> Any:
    """Compile the loop for ``ctx``; pass a checkpointer to make runs resumable."""
    nodes = Nodes(ctx)
    iterations = ctx.config.iterations

    def route_after_admit(state: BuildState) -> Literal["generate_scenarios", "__end__"]:
        return "generate_scenarios" if should_continue(state, iterations) else "__end__"

    def route_judge(state: BuildState) -> Literal["write_strategy", "admit"]:
        return "write_strategy" if route_after_judge(state) == "write_strategy" else "admit"

    g = StateGraph(BuildState)
    g.add_node("generate_scenarios", nodes.generate_scenarios)
    g.add_node("attempt", nodes.attempt)
    g.add_node("judge", nodes.judge)
    g.add_node("write_strategy", nodes.write_strategy)
    g.add_node("admit", nodes.admit)

    g.add_edge(START, "generate_scenarios")
    g.add_edge("generate_scenarios", "attempt")
    g.add_edge("attempt", "judge")
    g.add_conditional_edges("judge", route_judge)
    g.add_edge("write_strategy", "admit")
    g.add_conditional_edges("admit", route_after_admit)
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


def run(ctx: BuildContext, *, checkpointer: Any = None, thread_id: str = "build") -> BuildState:
    """Run the loop to the end and return its final state."""
    graph = build_graph(ctx, checkpointer)
    config = {"configurable": {"thread_id": thread_id}, "recursion_limit": 10_000}
    out = graph.invoke(BuildState(), config)
    return BuildState.model_validate(out)


def mermaid(ctx: BuildContext) -> str:
    """The graph's topology as Mermaid text (snapshot-tested so it cannot drift silently)."""
    return str(build_graph(ctx).get_graph().draw_mermaid())
