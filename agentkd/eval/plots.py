"""The report's plots (matplotlib, Agg): accuracy with CIs, differences vs baseline, categories, latency, items."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from agentkd.eval.results import ArmSummary, EvalResult

MAX_CATEGORIES = 12


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def color_of(s: ArmSummary) -> str:
    """Gray for the student alone, blue with its library, purple with another library, orange for the teacher."""
    if s.who == "teacher":
        return "#e08a2c" if s.tools else "#f2c48d"
    if s.library is None:
        return "#8c8c8c" if s.tools else "#c4c4c4"
    return "#2c6fbb" if s.name.startswith("student+library") and ":" not in s.name else "#7b4fb3"


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def plot_accuracy(result: EvalResult, path: Path) -> Path:
    """Accuracy per arm with 95% CI error bars (and the mean score beside it when it differs)."""
    plt = _plt()
    sums = result.summaries
    show_score = any(abs(s.score.value - s.accuracy.value) > 1e-9 for s in sums)
    fig, ax = plt.subplots(figsize=(max(4.5, 1.5 * len(sums) + 1.5), 3.6))
    width = 0.38 if show_score else 0.6
    xs = list(range(len(sums)))
    acc = [s.accuracy for s in sums]
    ax.bar([x - (width / 2 if show_score else 0) for x in xs], [a.value for a in acc], width,
           yerr=[[a.value - a.low for a in acc], [a.high - a.value for a in acc]], capsize=4,
           color=[color_of(s) for s in sums], label=result.accuracy_name)
    for x, a in zip(xs, acc, strict=True):
        ax.text(x - (width / 2 if show_score else 0), a.high + 0.02, f"{a.value:.0%}", ha="center", fontsize=9)
    if show_score:
        sc = [s.score for s in sums]
        ax.bar([x + width / 2 for x in xs], [a.value for a in sc], width, color=[color_of(s) for s in sums],
               alpha=0.45, hatch="//", yerr=[[a.value - a.low for a in sc], [a.high - a.value for a in sc]],
               capsize=4, label=result.score_name)
        ax.legend(fontsize=8, loc="upper left")
    ax.set_xticks(xs, [s.label.replace(" + ", "\n+ ") for s in sums], fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel(result.accuracy_name)
    ax.set_title(f"{result.task} ({result.split}, {result.n} items): 95% bootstrap CI", fontsize=10)
    return _save(fig, path)


def plot_differences(result: EvalResult, path: Path) -> Path | None:
    """Each arm minus the baseline on the same items, with paired-bootstrap 95% CIs."""
    if not result.comparisons:
        return None
    plt = _plt()
    comps = result.comparisons
    fig, ax = plt.subplots(figsize=(6, 0.6 * len(comps) + 1.4))
    for i, c in enumerate(comps):
        d = c.accuracy.diff
        s = result.summary(c.arm)
        ax.errorbar([d.value * 100], [i], xerr=[[(d.value - d.low) * 100], [(d.high - d.value) * 100]], fmt="o",
                    color=color_of(s), capsize=4, markersize=7)
        ax.text(d.high * 100 + 1.5, i, f"{d.value * 100:+.0f} pp  ({c.accuracy.wins} won, {c.accuracy.losses} lost)",
                va="center", fontsize=8)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(comps)), [result.summary(c.arm).label for c in comps], fontsize=8)
    ax.set_ylim(-0.7, len(comps) - 0.3)
    ax.invert_yaxis()  # the table's order, top to bottom
    lo = min(min(c.accuracy.diff.low for c in comps) * 100, -10) - 5
    hi = max(max(c.accuracy.diff.high for c in comps) * 100, 10) + 35
    ax.set_xlim(lo, hi)
    base = result.summary(result.baseline).label
    ax.set_xlabel(f"{result.accuracy_name} difference vs {base} (percentage points, paired 95% CI)")
    return _save(fig, path)


def _top_categories(result: EvalResult) -> list[str]:
    counts = Counter(r.category for r in result.items if r.arm == result.arms[0])
    return [c for c, _ in counts.most_common(MAX_CATEGORIES)]


def plot_categories(result: EvalResult, path: Path) -> Path | None:
    """Accuracy per category (the most frequent ones), one bar per arm."""
    cats = _top_categories(result)
    if len(cats) < 2:
        return None
    plt = _plt()
    sums = result.summaries
    fig, ax = plt.subplots(figsize=(7, 0.32 * len(cats) * len(sums) + 1.2))
    height = 0.8 / len(sums)
    for j, s in enumerate(sums):
        ys = [i + j * height for i in range(len(cats))]
        ax.barh(ys, [s.categories[c].accuracy if c in s.categories else 0 for c in cats], height,
                color=color_of(s), label=s.label)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(cats))],
                  [f"{c} (n={sums[0].categories[c].n})" for c in cats], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel(result.accuracy_name)
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("per category", fontsize=10)
    return _save(fig, path)


def plot_latency(result: EvalResult, path: Path) -> Path:
    """Seconds and completion tokens per item, one box per arm."""
    plt = _plt()
    sums = result.summaries
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(7, 1.6 * len(sums) + 3), 3.4))
    panels = ((left, "seconds", "seconds per item"), (right, "completion_tokens", "tokens written per item"))
    for ax, field, title in panels:
        data = [[getattr(r, field) for r in result.items if r.arm == s.name] for s in sums]
        box = ax.boxplot(data, patch_artist=True, widths=0.55)
        for patch, s in zip(box["boxes"], sums, strict=True):
            patch.set_facecolor(color_of(s))
            patch.set_alpha(0.7)
        ax.set_xticks(range(1, len(sums) + 1), [s.label.replace(" + ", "\n+ ") for s in sums], fontsize=7)
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def plot_items(result: EvalResult, path: Path) -> Path:
    """Every item (columns, grouped by category) × every arm (rows): green right, red wrong, amber partial."""
    plt = _plt()
    from matplotlib.colors import LinearSegmentedColormap

    category = {r.id: r.category for r in result.items}
    ids = sorted(result.scenario_ids, key=lambda i: (category.get(i, ""), i))
    by = {(r.arm, r.id): r for r in result.items}
    grid = [[(1.0 if by[(a, i)].correct else 0.45 * by[(a, i)].score) if (a, i) in by else float("nan")
             for i in ids] for a in result.arms]  # fmt: skip
    fig, ax = plt.subplots(figsize=(min(14, max(6, 0.12 * len(ids) + 3)), 0.45 * len(result.arms) + 1.2))
    cmap = LinearSegmentedColormap.from_list("rw", ["#d9534f", "#f0ad4e", "#5cb85c"])
    ax.imshow(grid, aspect="auto", cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    if len(ids) <= 120:  # a thin white line between items, while they are wide enough to see
        ax.set_xticks([x - 0.5 for x in range(1, len(ids))], minor=True)
        ax.set_yticks([y - 0.5 for y in range(1, len(result.arms))], minor=True)
        ax.grid(which="minor", color="white", linewidth=0.6)
        ax.tick_params(which="minor", length=0)
    bounds = [x for x in range(1, len(ids)) if category.get(ids[x]) != category.get(ids[x - 1])]
    if len(bounds) < 40:
        for x in bounds:
            ax.axvline(x - 0.5, color="black", linewidth=1.2)
    ax.set_yticks(range(len(result.arms)), [result.summary(a).label for a in result.arms], fontsize=8)
    ax.set_xticks([])
    ax.set_title(f"every item ({len(ids)}), grouped by category: green right, red wrong, amber partial",
                 fontsize=9)
    return _save(fig, path)


def write_plots(result: EvalResult, directory: Path) -> dict[str, Path]:
    """All plots that apply, by name."""
    made = {
        "accuracy": plot_accuracy(result, directory / "accuracy.png"),
        "differences": plot_differences(result, directory / "differences.png"),
        "categories": plot_categories(result, directory / "categories.png"),
        "latency": plot_latency(result, directory / "latency.png"),
        "items": plot_items(result, directory / "items.png"),
    }
    return {k: v for k, v in made.items() if v is not None}
