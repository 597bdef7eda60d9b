"""Can any text in the student's context help it on BFCL `multiple`? An upper bound for what a pack could do.

The BFCL builds admitted nothing (`benchmarks/examples.md`, BFCL). Was that the 1.5B teacher's writing, or
does added context not help this student on this task at all? This probe skips the teacher and the
admission rule and runs the student on every BFCL train item of a category, paired, with:

- ``alone``: the student as `agentkd eval` runs it (`BfclTask.run`, no entry);
- ``rule``: one hand-written rule (``RULE``, what the build's failures share, as a strong teacher would write
  it) on every item, rendered as the library renders an entry (`bfcl_system.md`);
- ``rule-default-system``: the same rule appended to the model's own default system line instead of
  replacing it (is the harm the lost system prompt?);
- ``rule-in-request``: the same rule after the user's request, in the user turn (no system message);
- ``nearest-turns``: the nearest *other* train item (MiniLM cosine of the request, no threshold), its
  verified call shown as a prior exchange (user request, assistant tool call, tool result): a worked
  example in the model's own tool-call format.

It also counts how many validation / held-out items have their expected function among the train items'
answers (the "same template" coverage that made worked examples work on `gsm_symbolic`).

Run (models assembled, nothing else running; ~48 min on a 2-core Xeon):
    AGENTKD_HOME=/tmp/bfx python benchmarks/bfcl_context_probe.py benchmarks/eval/bfcl-context-probe
Each arm's records go to OUT/<arm>.jsonl as it finishes; an arm already there is read, not re-run.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from agentkd.eval.stats import paired_bootstrap
from agentkd.library.embedder import get_embedder
from agentkd.models.llamacpp import close_all
from agentkd.parts import load_student, load_task
from agentkd.schema import Scenario, Strategy
from agentkd.tasks.bfcl import ground_truth_call
from agentkd.tasks.bfcl_checker import fc_name

CATEGORY = "multiple"
RULE = Strategy(
    id="s-handwritten", title="Fill a call only from the request",
    trigger="Choosing one of the offered functions and its arguments for a request",
    body="1. Pick the function whose description matches what the user asks for; write its exact name from the list.\n"
         "2. Give every required argument, copied from the request (same numbers, names and units).\n"
         "3. Leave out an optional argument unless the request says its value.",
)
DEFAULT_SYSTEM = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant."  # the GGUF template's own
ARMS = ("alone", "rule", "rule-default-system", "rule-in-request", "nearest-turns")


def run_arm(arm: str, task: Any, student: Any, items: list[Scenario], out: Path) -> list[dict[str, Any]]:
    rows = []
    nearest = nearest_items(items, items) if arm == "nearest-turns" else {}
    for i, sc in enumerate(items):
        extra: dict[str, Any] = {}
        if arm in ("alone", "rule"):
            attempt = task.run(student, sc, strategies=[RULE] if arm == "rule" else None)
        else:
            question = [dict(m) for m in task.item(sc)["question"][0]]
            if arm == "rule-default-system":
                system = f"{DEFAULT_SYSTEM}\n\nWhat helped on similar requests:\n{RULE.render()}"
                messages = [{"role": "system", "content": system}, *question]
            elif arm == "rule-in-request":
                question[-1]["content"] += f"\n\nWhat helped on similar requests:\n{RULE.render()}"
                messages = question
            else:
                example, score = nearest[sc.id]
                name, args = next(iter(ground_truth_call(task.item(example)["ground_truth"][0]).items()))
                call = {"id": "call_0", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
                messages = [{"role": "user", "content": example.question},
                            {"role": "assistant", "content": "", "tool_calls": [call]},
                            {"role": "tool", "tool_call_id": "call_0", "content": "(done)"}, *question]
                extra = {"example": example.id, "cosine": round(score, 3)}
            attempt = task.reply_to(student, sc, messages)
        verdict = task.grade(sc, attempt)
        rows.append({"id": sc.id, "category": sc.category, "correct": verdict.correct, "answer": attempt.answer,
                     "reasons": verdict.reasons, **extra})
        print(f"{arm} {i + 1}/{len(items)} {sc.id} {verdict.correct}", flush=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return rows


def nearest_items(items: list[Scenario], pool: list[Scenario]) -> dict[str, tuple[Scenario, float]]:
    embedder = get_embedder()
    unit = lambda m: m / np.linalg.norm(m, axis=1, keepdims=True)  # noqa: E731
    pool_vectors = unit(embedder.embed([s.question for s in pool]))
    item_vectors = unit(embedder.embed([s.question for s in items]))
    out = {}
    for sc, vector in zip(items, item_vectors, strict=True):
        scores = pool_vectors @ vector
        best = max((j for j in range(len(pool)) if pool[j].id != sc.id), key=lambda j: scores[j])
        out[sc.id] = (pool[best], float(scores[best]))
    return out


def coverage(task: Any) -> list[str]:
    """Items whose expected function is some train item's answer (a worked example of the same function)."""
    def expected(sc: Scenario) -> str:
        return next(iter(ground_truth_call(task.item(sc)["ground_truth"][0])))

    train = Counter(expected(s) for s in task.scenarios("train", 10_000, 1))
    lines = []
    for split in ("validation", "heldout"):
        items = task.scenarios(split, 10_000, 1)
        same = sum(train[expected(s)] > 0 for s in items)
        offered = sum(bool({fc_name(f["name"]) for f in task.item(s)["function"]} & set(train)) for s in items)
        lines.append(f"{task.name} {split}: {len(items)} items; expected function answered by a train item: {same}; "
                     f"some offered function answered by a train item: {offered}")
    return lines


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "benchmarks/eval/bfcl-context-probe")
    out.mkdir(parents=True, exist_ok=True)
    task = load_task(f"bfcl:{CATEGORY}")
    items = task.scenarios("train", 10_000, 1234)
    student = None
    results: dict[str, dict[str, bool]] = {}
    for arm in ARMS:
        path = out / f"{arm}.jsonl"
        if path.exists():
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        else:
            student = student or load_student(f"bfcl:{CATEGORY}")
            rows = run_arm(arm, task, student, items, path)
        results[arm] = {r["id"]: bool(r["correct"]) for r in rows}
    close_all()  # an unclosed model prints a TypeError at exit
    ids = [sc.id for sc in items]
    base = results["alone"]
    lines = [f"BFCL {CATEGORY}, train split, {len(ids)} items, student alone {sum(base.values())}/{len(ids)}"]
    for arm in ARMS[1:]:
        d = paired_bootstrap([float(base[i]) for i in ids], [float(results[arm][i]) for i in ids])
        lines.append(f"{arm:>20}: {sum(results[arm].values())}/{len(ids)}  {d.diff.value * 100:+.1f} pp "
                     f"[{d.diff.low * 100:+.1f}, {d.diff.high * 100:+.1f}]  won {d.wins}, lost {d.losses}")
    for name in ("multiple", "simple"):
        lines += coverage(load_task(f"bfcl:{name}"))
    (out / "summary.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
