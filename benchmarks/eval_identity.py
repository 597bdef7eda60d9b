"""Compare two `agentkd eval` runs of the same items item by item (e.g. batch_width 4 vs 1): per arm, how many
answers are identical, identical with the same token counts and tool calls, and graded the same.

Run: python benchmarks/eval_identity.py benchmarks/eval/math-heldout-100-sequential benchmarks/eval/math-heldout-100
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def load(run: Path) -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in sorted((run / "transcripts").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            out[(path.stem, record["id"])] = record
    return out


def main() -> None:
    a, b = load(Path(sys.argv[1])), load(Path(sys.argv[2]))
    fields = ("answer", "completion_tokens", "prompt_tokens", "tool_calls")
    print("| arm | items | identical answer | identical answer, tokens, calls | same grade | correct (1st / 2nd) |")
    print("|---|---:|---:|---:|---:|---:|")
    for arm in sorted({k[0] for k in a}):
        keys = [k for k in a if k[0] == arm and k in b]
        same = sum(a[k]["answer"] == b[k]["answer"] for k in keys)
        whole = sum(all(a[k][f] == b[k][f] for f in fields) for k in keys)
        graded = sum(a[k]["correct"] == b[k]["correct"] for k in keys)
        right = f"{sum(a[k]['correct'] for k in keys)} / {sum(b[k]['correct'] for k in keys)}"
        print(f"| {arm} | {len(keys)} | {same} | {whole} | {graded} | {right} |")


if __name__ == "__main__":
    main()
