"""CLI options written from the settings: one description per knob, in ``agentkd/config.py``."""

from __future__ import annotations

from typing import Any

import typer


def setting(name: str, *flags: str) -> Any:
    """A CLI option whose help is the setting's own description (and env variable): written once, in config.py."""
    from agentkd.config import Settings

    field = Settings.model_fields[name]
    default = f"{field.default!r}" if field.default == "" else field.default
    return typer.Option(*flags, help=f"{field.description} (env AGENTKD_{name.upper()}, default {default}).")
