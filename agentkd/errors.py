"""Errors that agentkd raises on purpose. Each message says what went wrong and how to fix it.

Mistakes made by a *model* (bad tool arguments, wrong answers, malformed JSON that we re-ask for)
are data and never raise past the component that handles them; these classes are for conditions
the user has to act on, or for a component that gave up after its bounded retries.
"""

from __future__ import annotations

from typing import Any


class AgentKDError(Exception):
    """Base class: the CLI prints the message and exits with ``exit_code``, without a traceback."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\n  hint: {self.hint}" if self.hint else base


class ConfigError(AgentKDError):
    """A setting is missing or invalid."""

    exit_code = 2


class ModelNotFoundError(AgentKDError):
    """A model name, path or Hugging Face spec cannot be resolved to a usable GGUF file."""

    exit_code = 3


class ModelCorruptError(ModelNotFoundError):
    """A model file exists but fails its checksum or GGUF header check."""


class ContextOverflowError(ConfigError):
    """A prompt does not fit the model's context window."""


class ModelCrashError(ConfigError):
    """llama.cpp dies natively loading or running a model on this machine (found by the canary, in a child)."""


class TeacherError(AgentKDError):
    """The teacher could not be reached or kept failing after retries."""

    exit_code = 4


class TeacherOutputError(TeacherError):
    """The teacher's output failed validation on every attempt.

    ``attempts`` holds each raw output with its validation error, so nothing the teacher said is lost.
    """

    def __init__(self, message: str, *, attempts: list[dict[str, Any]], hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.attempts = attempts

    @property
    def last_output(self) -> str:
        return str(self.attempts[-1]["output"]) if self.attempts else ""


class LibraryError(AgentKDError):
    """The strategy library cannot be opened, read or written."""

    exit_code = 5


class LibraryFormatError(LibraryError):
    """A strategy file is malformed; the message names the file and the field or line."""


class TaskError(AgentKDError):
    """A task source or benchmark cannot be loaded."""

    exit_code = 6


class ToolError(AgentKDError):
    """A tool was defined incorrectly (our bug or the user's definition, not the model's call)."""

    exit_code = 7


class TeacherUnavailable(TeacherError):
    """A transient failure of one teacher call (timeout, rate limit, dropped connection); retried."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class TeacherTimeout(TeacherUnavailable):
    """The teacher did not answer in time."""


class TeacherRateLimited(TeacherUnavailable):
    """The provider answered 429; ``retry_after`` holds its Retry-After when given."""


class TeacherConnectionError(TeacherUnavailable):
    """The connection dropped or the server returned a 5xx error."""


class GateFailed(AgentKDError):
    """The pack gate found categories where the library is worse than the student alone."""


class RunStateError(AgentKDError):
    """A build run's spec or checkpoint is missing or damaged, so the run cannot be resumed as it was."""

    exit_code = 8
