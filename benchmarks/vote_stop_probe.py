"""When do a vote's episodes finish? k = 8 votes run to the end, each episode's finish time recorded, then
stopping rules replayed on the record (a rule that stops at time t keeps the answers finished by t).

Run:  python benchmarks/vote_stop_probe.py run 10 [RECORD]   (greedy, then k = 8 votes, on 10 held-out questions;
                                                              RECORD must not exist yet)
      python benchmarks/vote_stop_probe.py replay [RECORD]   (the rules, from RECORD; default
                                                              benchmarks/eval/vote-stop-probe/episodes.json)
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from agentkd.student.voting import decided

RECORD = Path(__file__).parent / "eval" / "vote-stop-probe" / "episodes.json"
MODEL = Path.home() / ".agentkd" / "models" / "qwen2.5-coder-0.5b.gguf"


def run(n: int, record: Path) -> None:
    import agentkd.student.student as student_module
    from agentkd.eval.heldout import grade
    from agentkd.models.runlog import RunLog
    from agentkd.parts import load_task
    from agentkd.schema import Attempt
    from agentkd.student import Student
    from agentkd.student.voting import answer_key

    task = load_task("gsm_symbolic")
    items = task.scenarios("heldout", n, seed=5)  # type: ignore[arg-type]  # batching_bench.py's questions
    student = Student(MODEL, n_threads=2, max_tokens=256, max_steps=3, log=RunLog())
    finished: list[tuple[float, list[str]]] = []
    t0 = [0.0]

    def spy(texts: list[str], unfinished: int) -> bool:  # called as each episode finishes; never stops the vote
        finished.append((time.perf_counter() - t0[0], list(texts)))
        return False

    student_module.decided = spy  # type: ignore[assignment]
    out: list[dict[str, Any]] = []
    for label, samples in (("greedy", 1), ("vote", 8)):
        student.samples = samples
        for sc in items:
            finished.clear()
            t0[0] = time.perf_counter()
            ans = student.ask(sc.question, task=sc.task, instructions=task.instructions)
            wall = time.perf_counter() - t0[0]
            out.append({"run": label, "id": sc.id, "expected": sc.answer, "wall": wall, "text": ans.text,
                        "correct": grade(task, sc, Attempt(scenario_id=sc.id, answer=ans.text)).correct,
                        "tokens": ans.completion_tokens,
                        "events": [(t, [answer_key(x) for x in texts]) for t, texts in finished],
                        "answers": [answer_key(a) for a in (ans.votes[0]["answers"] if ans.votes else [ans.text])]})
            print(f"{label} {sc.id}: {wall:.1f} s", flush=True)
    record.parent.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(out))


def _same(key: str | None, expected: str) -> bool:
    try:
        return key is not None and abs(float(key) - float(expected)) < 1e-6
    except ValueError:
        return key == expected


def _winner(keys: list[str | None], greedy: str | None) -> str | None:
    counts = Counter(k for k in keys if k is not None)
    if not counts:
        return None
    best = max(counts.values())
    return greedy if counts.get(greedy or "", 0) == best else next(k for k in keys if k and counts[k] == best)


def replay(record: Path) -> None:
    rows = json.loads(record.read_text())
    greedy = {r["id"]: r for r in rows if r["run"] == "greedy"}
    votes = [r for r in rows if r["run"] == "vote"]
    base = sum(greedy[r["id"]]["wall"] for r in votes)
    print(f"one greedy answer: {base:.1f} s for {len(votes)} questions, "
          f"{sum(greedy[r['id']]['correct'] for r in votes)} correct")
    first = [r["events"][0][0] / greedy[r["id"]]["wall"] for r in votes]
    print(f"first of 8 episodes finished at {min(first):.1f}-{max(first):.1f}x (mean {sum(first) / len(first):.1f}x) "
          "the question's greedy answer time")
    print("| rule | wall vs greedy | correct | same answer as all 8 | episodes kept (mean) |")
    print("|---|---:|---:|---:|---:|")

    def winner(keys: list[Any], r: dict[str, Any]) -> str | None:
        return _winner(keys, r["answers"][0] if r["answers"][0] in keys else None)

    def score(stop: Any) -> tuple[float, int, int, float]:
        wall, correct, same, kept = 0.0, 0, 0, 0
        for r in votes:
            t, keys = stop(r["events"], r["wall"])
            wall += t
            correct += _same(winner(keys, r), r["expected"])
            same += winner(keys, r) == winner(r["events"][-1][1], r)
            kept += len(keys)
        return wall / base, correct, same, kept / len(votes)

    def exact(events: list[Any], end: float, deadline: float = float("inf")) -> tuple[float, list[Any]]:
        keys: list[Any] = []
        for n, (t, keys_now) in enumerate(events, 1):
            if t > deadline:
                return deadline, keys
            keys = keys_now
            if decided([k or "" for k in keys], 8 - n):  # the Student's own rule (keys are their own keys)
                return t, keys
        return end, keys

    rules: list[tuple[str, Any]] = [("all 8 finish", lambda ev, end: (end, ev[-1][1])),
                                    ("stops once decided (the default)", exact)]
    for m in range(1, 8):
        rules.append((f"decided, or the {m}. finish (the rest are stopped)",
                      lambda ev, end, m=m: exact(ev, end, ev[m - 1][0])))
    for label, rule in rules:
        ratio, correct, same, kept = score(rule)
        print(f"| {label} | {ratio:.2f}x | {correct}/{len(votes)} | {same}/{len(votes)} | {kept:.1f} |")


if __name__ == "__main__":
    path = Path(sys.argv[3]) if sys.argv[1:2] == ["run"] and len(sys.argv) > 3 else RECORD
    if sys.argv[1:2] == ["replay"] and len(sys.argv) > 2:
        path = Path(sys.argv[2])
    if sys.argv[1:2] == ["run"]:
        if path.exists():  # a record is a measurement: never overwrite one
            sys.exit(f"{path} already holds a record: give another path, or move it away first")
        run(int(sys.argv[2]) if len(sys.argv) > 2 else 10, path)
    replay(path)
