"""Supervised fine-tuning data from verified teacher tool-use trajectories (``agentkd export-sft``).

``trajectories`` runs the teacher as the agent with the student's tools and keeps what the judge verifies;
``formats`` writes a trajectory as an OpenAI, ShareGPT (LLaMA-Factory) or Hugging Face record; ``validate``
checks each record against its format's rules and the student's own chat template; ``hygiene`` dedupes
and splits; ``export`` writes the files atomically; ``card`` describes the dataset; ``pipeline`` ties it up.
"""

from agentkd.sft.export import ExportConfig, ExportReport, build_records, write_dataset
from agentkd.sft.formats import FORMATS, RecordOptions, conversation
from agentkd.sft.trajectories import Dropped, Trajectory, TrajectoryCollector
from agentkd.sft.validate import CHECKS, TemplateCheck

__all__ = [
    "CHECKS",
    "FORMATS",
    "Dropped",
    "ExportConfig",
    "ExportReport",
    "RecordOptions",
    "TemplateCheck",
    "Trajectory",
    "TrajectoryCollector",
    "build_records",
    "conversation",
    "write_dataset",
]
