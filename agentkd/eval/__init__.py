"""Evaluation: arms on the same held-out items, bootstrap intervals, reports, and strategy-pack manifests.

    from agentkd.config import get_settings
    from agentkd.eval import EvalConfig, run_eval

    result = run_eval(get_settings(), EvalConfig(task="gsm_symbolic", n=50, arms="student,student+library,teacher"))
    print(result.summary("student+library").accuracy.fmt())

The CLI is ``agentkd eval``; benchmarks plug in through ``agentkd.tasks.TaskSource`` (docs/adapters.md).
"""

from agentkd.eval.arms import ArmSpec, parse_arm, parse_arms
from agentkd.eval.packs import PackManifest, import_pack, write_measurement
from agentkd.eval.results import ArmSummary, Comparison, EvalResult, ItemRecord
from agentkd.eval.runner import EvalConfig, run_eval
from agentkd.eval.stats import Interval, PairedDifference, bootstrap_ci, paired_bootstrap
from agentkd.eval.teacher_arm import TeacherSolver

__all__ = [
    "ArmSpec",
    "ArmSummary",
    "Comparison",
    "EvalConfig",
    "EvalResult",
    "Interval",
    "ItemRecord",
    "PackManifest",
    "PairedDifference",
    "TeacherSolver",
    "bootstrap_ci",
    "import_pack",
    "paired_bootstrap",
    "parse_arm",
    "parse_arms",
    "run_eval",
    "write_measurement",
]
