"""agentkd's version, in a module with no dependencies (an edge bundle imports the package without pydantic)."""

__version__ = "0.1.0"
