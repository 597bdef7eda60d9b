"""Prompt templates live as files beside this module; ``render`` fills them with Jinja."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from typing import Any

import jinja2


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(lambda name: files(__package__).joinpath(name).read_text(encoding="utf-8")),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )


def render(name: str, **values: Any) -> str:
    """Render ``agentkd/prompts/<name>`` (e.g. ``"strategy.md"``) with ``values``."""
    return _env().get_template(name).render(**values).strip()
