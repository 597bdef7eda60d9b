"""Typed settings. Every field can be set from the environment with the ``AGENTKD_`` prefix.

The CLI reads its defaults from here too, so ``--help`` and the environment never disagree.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from agentkd.errors import ConfigError

LOCAL_TEACHER = "local/qwen2.5-coder-1.5b"
DEFAULT_STUDENT = "qwen2.5-coder-0.5b"


def default_teacher() -> str:
    """The teacher to use when none is configured: a hosted model if its API key is set, else local."""
    if os.environ.get("OPENAI_API_KEY"):
        return "openai/gpt-4o-mini"
    if os.environ.get("ANTHROPIC_API_KEY"):
        return "anthropic/claude-3-5-haiku-latest"
    return LOCAL_TEACHER


class Settings(BaseSettings):
    """agentkd settings (environment variables ``AGENTKD_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="AGENTKD_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".agentkd",
        description="Where models, libraries and run logs live.",
    )
    teacher: str = Field(
        default_factory=default_teacher,
        description="Teacher model as a litellm name: local/<catalog-name>, openai/gpt-4o-mini, "
        "anthropic/..., ollama/..., or openai/<name> with teacher_api_base for any OpenAI-compatible server.",
    )
    teacher_api_base: str | None = Field(None, description="Base URL of an OpenAI-compatible teacher server.")
    teacher_api_key: SecretStr | None = Field(
        None, description="API key for the teacher (else the provider's env var)."
    )
    teacher_timeout: float = Field(180.0, description="Seconds before one teacher call is abandoned and retried.")
    teacher_retries: int = Field(3, description="Retries of a teacher call on timeouts, rate limits and drops.")
    max_reasks: int = Field(2, description="Times a teacher is re-asked after output that fails validation.")
    student: str = Field(
        DEFAULT_STUDENT, description="Student model: a catalog name, a path to a .gguf file, or hf:<repo>/<file>."
    )
    student_api_base: str | None = Field(
        None, description="Base URL of an OpenAI-compatible server that serves the student (then `student` is the "
        "model name it serves); unset: the student runs in-process from its GGUF file."
    )
    student_timeout: float = Field(
        300.0, description="Seconds a served student may take to answer one request before it is abandoned."
    )
    api_key: SecretStr | None = Field(
        None, description="API key that clients of `agentkd serve` must send as a bearer token (the openai "
        "client's api_key); unset: no key is asked for."
    )
    allowed_hosts: str = Field(
        "", description="Comma-separated extra Host names `agentkd serve` answers to; bound to localhost it "
        "answers only to localhost names otherwise (DNS rebinding protection); * answers to any."
    )
    max_request_mb: float = Field(4.0, description="Largest request body `agentkd serve` accepts, in MB.")
    library: str = Field(
        "", description="Strategy library: a directory for an on-disk Chroma store or http://host:port for a server."
    )
    collection: str = Field("default", description="Name of the strategy collection inside the library.")
    n_ctx: int = Field(4096, description="Context window of local models, in tokens.")
    n_threads: int | None = Field(None, description="CPU threads for llama.cpp (default: all cores).")
    seed: int = Field(1234, description="Seed for sampling; with temperature 0 runs are reproducible.")
    temperature: float = Field(0.0, description="Sampling temperature of the student.")
    top_k: int = Field(3, description="Strategies retrieved for each question.")
    strategy_tokens: int = Field(600, description="Token budget for packed strategies in the student's prompt.")
    example_min_score: float = Field(
        0.65, description="A worked example is shown only when its question is at least this similar to the "
        "user's (cosine, MiniLM). Measured on gsm_symbolic's validation split: examples of the same template scored "
        "0.66-0.9, of other templates at most 0.64 (benchmarks/examples.md); an example of another kind of problem "
        "cost the 0.5B student more items than it won."
    )
    samples: int = Field(1, description="Voting: the student samples this many executed answers and keeps the "
                         "majority final answer (1: one greedy answer).")
    vote_early_stop: bool = Field(True, description="Voting: stop the answers still being written once the "
                                  "finished ones have decided the vote (the winner is the same; it saves their time).")
    vote_quorum: int = Field(0, ge=0, description="Voting: also stop the answers still being written once this "
                             "many have finished, and vote among those (0: off). Trades a vote's tail for time: with "
                             "k = 8 on a 2-core Xeon, 4 cut the wall time from 3.4x to 2.5x one greedy answer at "
                             "the same accuracy on 30 questions (benchmarks/batching.md, section 11).")
    batch_width: int = Field(4, ge=1, description="Evaluation: independent items of a student arm run at once as "
                             "sequences of one llama.cpp batch (in-process student; 1: one by one). At temperature 0 "
                             "the answers are the same either way up to width 7 (measured on Qwen2.5-Coder-0.5B/1.5B: "
                             "8 sequences decoding together round differently; benchmarks/batching.md §6).")
    max_steps: int = Field(4, description="Model calls per answer at most (each may run one tool).")
    # one build's knobs: the CLI, the Python API (BuildConfig) and eval read the same defaults
    iterations: int = Field(6, description="Rounds of plan → generate → attempt → judge → write → admit, at most: "
                            "the time budget (build_minutes) usually ends the loop first.")
    build_minutes: float = Field(
        9.5, ge=0, description="Wall-time budget of one build, models and held-out measurement included (0: none). "
        "The student-alone arm runs first and its time is kept for the with-library arm; rounds and candidates "
        "start only while the time a candidate takes on this machine is left."
    )
    batch_size: int = Field(6, description="Scenarios the student attempts per round.")
    categories: str = Field(
        "", description="Limit the task to some of its categories (gsm_symbolic: problem templates): a number N "
        "for N of them drawn with the seed, or a comma-separated list; the build draws, and held-out items measure, "
        "only those ('': all)."
    )
    heldout: int = Field(20, description="Held-out items for a build's before/after measurement (paired, with a "
                         "95% interval; a paired test needs ~56 items to see +20 points).")
    siblings: int = Field(1, description="Deprecated, ignored: candidates are measured on admission_items items.")
    admission_items: int = Field(
        8, description="Paired items of its category each candidate is measured on, with and without it "
        "(fewer only when the category has fewer); see agentkd/distill/admission.py."
    )
    admission_alpha: float = Field(
        0.05, description="Level of the one-sided sign test that admits a candidate: a candidate that does not "
        "help is admitted with probability at most this."
    )
    probe_temperature: float = Field(
        0.0, description="Temperature of one sampled run per item that tells items the student solves sometimes "
        "(where a candidate can make a difference) from those it always or never solves, measured first; 0 (the "
        "default, a third of the cost): no probe, items drawn a few pairs at a time, measuring stops when the rule "
        "can no longer admit."
    )
    prose: str = Field(
        "auto", pattern="^(auto|on|off)$", description="Written (prose) entries when a failure has no verified "
        "worked example: on, off, or auto (as the task says: off for reasoning-gym tasks, whose items programs solve; "
        "in the math builds the 0.5B student used prose entries almost never, 1 admitted of the 30+ tested against 30 "
        "worked examples, and each one tested holds the student for a candidate's trials; benchmarks/examples.md)."
    )
    example_tries: int = Field(
        2, ge=1, le=12, description="The teacher's tries at a verified worked example of each failure: the first "
        "greedy, the second sampled, the rest greedy on siblings (other numbers of the same category). More find "
        "examples for categories the teacher often gets wrong, at a teacher call each (the Quickstart keeps 2)."
    )
    max_strategies: int = Field(3, description="Entries the teacher writes per round, from the first failures judged "
                                "(the time budget decides how many rounds).")

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def library_path(self) -> str:
        return self.library or str(self.home / "library")

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (None values are ignored); an invalid value is a
    ``ConfigError`` naming the setting, its option and its environment variable."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        errors = exc.errors()
        wrong = "; ".join(f"{'.'.join(str(p) for p in e['loc'])} = {e.get('input')!r}: {e['msg']}" for e in errors)
        names = sorted({str(e["loc"][0]) for e in errors if e["loc"]})
        envs = ", ".join(f"AGENTKD_{n.upper()}" for n in names)
        raise ConfigError(f"invalid setting: {wrong}", hint=f"fix its option on the command line or the environment "
                          f"variable {envs}; `agentkd <command> --help` says what each option takes") from None
