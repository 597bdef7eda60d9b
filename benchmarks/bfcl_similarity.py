"""How close BFCL's held-out requests are to its train requests, as retrieval sees them (MiniLM cosine over the
request with its functions): the share of held-out items a worked example of a train item could be shown to
at a given ``example_min_score``. No model is loaded.

    python benchmarks/bfcl_similarity.py
"""

from __future__ import annotations

import numpy as np

from agentkd.library.embedder import get_embedder
from agentkd.tasks.bfcl import BfclTask


def main() -> None:
    embed = get_embedder().embed
    for category in ("multiple", "simple"):
        task = BfclTask(category)
        train, held = task.scenarios("train", 10_000, 0), task.scenarios("heldout", 10_000, 0)
        a, b = embed([s.question for s in train]), embed([s.question for s in held])
        a /= np.linalg.norm(a, axis=1, keepdims=True)
        b /= np.linalg.norm(b, axis=1, keepdims=True)
        best = (b @ a.T).max(axis=1)
        q = ", ".join(f"{x:.2f}" for x in np.quantile(best, [0.1, 0.25, 0.5, 0.75, 0.9]))
        print(f"{category}: {len(train)} train, {len(held)} held-out; nearest train item, deciles 10/25/50/75/90: {q}; "
              f"share >= 0.65: {(best >= 0.65).mean():.2f}, >= 0.5: {(best >= 0.5).mean():.2f}")


if __name__ == "__main__":
    main()
