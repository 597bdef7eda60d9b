"""The ``agentkd`` command line (``agentkd.cli.main``); ``python -m agentkd.cli`` runs it too."""

from agentkd.cli.main import app, main

__all__ = ["app", "main"]
