"""The teacher: a black-box chat model reached through a transport (litellm by default)."""

from agentkd.teacher.teacher import Teacher

__all__ = ["Teacher"]
