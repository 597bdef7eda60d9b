"""The one module that imports litellm: every teacher call goes through it, whatever the provider.

``local/<catalog-name>`` is served in-process by a litellm ``CustomLLM`` that runs the catalog model
with llama.cpp, so a local teacher and a hosted one are driven by exactly the same code path.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # offline: no remote price-list fetch
os.environ.setdefault("LITELLM_LOG", "ERROR")

import litellm
from litellm import CustomLLM
from litellm.types.utils import ModelResponse

from agentkd.errors import (
    AgentKDError,
    ConfigError,
    TeacherConnectionError,
    TeacherError,
    TeacherRateLimited,
    TeacherTimeout,
)
from agentkd.models import catalog, llamacpp

litellm.suppress_debug_info = True
litellm.drop_params = True  # a provider that lacks a parameter (seed, response_format) ignores it


class LocalProvider(CustomLLM):
    """litellm provider ``local``: ``local/<catalog name or .gguf path>`` runs in-process via llama.cpp."""

    def __init__(self, n_ctx: int = 4096, n_threads: int | None = None) -> None:
        super().__init__()
        self.n_ctx = n_ctx
        self.n_threads = n_threads

    def completion(
        self,
        model: str,
        messages: list,
        api_base: str,
        custom_prompt_dict: dict,  # type: ignore[override]
        model_response: ModelResponse,
        print_verbose: Any,
        encoding: Any,
        api_key: Any,
        logging_obj: Any,
        optional_params: dict,
        *args: Any,
        **kwargs: Any,
    ) -> ModelResponse:
        llm = llamacpp.shared(catalog.resolve(model), n_ctx=self.n_ctx, n_threads=self.n_threads)
        params = dict(optional_params)
        schema = None
        fmt = params.get("response_format") or {}
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            schema = fmt["json_schema"].get("schema")
        elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
            schema = {"type": "object"}
        result = llm.chat(
            [dict(m) for m in messages],
            tools=params.get("tools"),
            tool_choice=params.get("tool_choice") or "auto",
            temperature=float(params.get("temperature") or 0.0),
            max_tokens=int(params.get("max_tokens") or 512),
            seed=params.get("seed"),
            json_schema=schema,
            stop=tuple(params.get("stop") or ()),
        )
        return ModelResponse(
            model=f"local/{model}",
            choices=[{"index": 0, "message": result.message, "finish_reason": result.finish_reason}],
            usage={
                "prompt_tokens": result.prompt_tokens,
                "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens,
            },
        )

    async def acompletion(self, *args: Any, **kwargs: Any) -> ModelResponse:  # type: ignore[override]
        return await asyncio.to_thread(self.completion, *args, **kwargs)


_registered = False


def register_local_provider(n_ctx: int = 4096, n_threads: int | None = None) -> None:
    """Make ``local/...`` model names resolvable by litellm (idempotent)."""
    global _registered
    if not _registered:
        litellm.custom_provider_map = [
            *[p for p in litellm.custom_provider_map if p.get("provider") != "local"],
            {"provider": "local", "custom_handler": LocalProvider(n_ctx=n_ctx, n_threads=n_threads)},
        ]
        litellm._custom_providers = [*{*litellm._custom_providers, "local"}]
        _registered = True


def supports_json_schema(model: str) -> bool:
    if model.startswith("local/"):
        return True
    try:
        return bool(litellm.supports_response_schema(model=model))
    except Exception:
        return False


def _retry_after(exc: Exception) -> float | None:
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        value = headers.get("retry-after") or headers.get("Retry-After")
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class LitellmTransport:
    """Sends one chat request through litellm and returns an OpenAI-shaped dict with ``_cost``."""

    def __init__(
        self,
        *,
        api_base: str | None = None,
        api_key: str | None = None,
        timeout: float = 180.0,
        n_ctx: int = 4096,
        n_threads: int | None = None,
    ) -> None:
        self.api_base, self.api_key, self.timeout = api_base, api_key, timeout
        register_local_provider(n_ctx, n_threads)

    def __call__(self, *, model: str, messages: list[dict[str, Any]], **params: Any) -> dict[str, Any]:
        kwargs: dict[str, Any] = {k: v for k, v in params.items() if v is not None}
        if kwargs.get("tools"):  # litellm 1.106 imports its MCP gateway (not installed) whenever tools are sent
            kwargs.setdefault("_skip_mcp_handler", True)
        if self.api_base and not model.startswith("local/"):
            kwargs["api_base"] = self.api_base
        if self.api_key and not model.startswith("local/"):
            kwargs["api_key"] = self.api_key
        t0 = time.perf_counter()
        try:
            resp = litellm.completion(model=model, messages=messages, timeout=self.timeout, num_retries=0, **kwargs)
        except litellm.Timeout as exc:
            raise TeacherTimeout(f"teacher {model} timed out after {self.timeout:.0f}s") from exc
        except litellm.RateLimitError as exc:
            raise TeacherRateLimited(f"teacher {model} is rate limited: {exc}", retry_after=_retry_after(exc)) from exc
        except (
            litellm.APIConnectionError,
            litellm.InternalServerError,
            litellm.ServiceUnavailableError,
            litellm.BadGatewayError,
        ) as exc:
            if (ours := _our_error(exc)) is not None:  # e.g. the local provider's unknown or corrupt model
                raise ours from exc
            raise TeacherConnectionError(f"teacher {model} connection failed: {exc}") from exc
        except litellm.NotFoundError as exc:
            raise ConfigError(
                f"the teacher provider does not know the model {model!r}: {exc}",
                hint="check the model name (and AGENTKD_TEACHER_API_BASE); for a local teacher use "
                "local/<catalog name>, see `agentkd models list`.",
            ) from exc
        except litellm.AuthenticationError as exc:
            raise ConfigError(
                f"the teacher provider rejected the API key for {model}.",
                hint="set the provider's key (e.g. OPENAI_API_KEY) or AGENTKD_TEACHER_API_KEY, or use a local teacher: "
                "--teacher local/qwen2.5-coder-1.5b",
            ) from exc
        except litellm.BadRequestError as exc:
            if "LLM Provider NOT provided" in str(exc):
                raise ConfigError(
                    f"litellm does not know the provider of teacher {model!r}.",
                    hint="prefix the model with its provider: openai/…, anthropic/…, ollama/…, local/<catalog-name>",
                ) from exc
            raise TeacherError(f"teacher {model} rejected the request: {exc}") from exc
        data = resp.model_dump()
        data["_seconds"] = time.perf_counter() - t0
        data["_cost"] = 0.0 if model.startswith("local/") else _cost(resp)
        return data


def _our_error(exc: BaseException) -> AgentKDError | None:
    """An agentkd error that litellm wrapped (it reports a custom provider's exceptions as connection errors,
    which would be retried as if the network were down, though the fix is the user's)."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, AgentKDError) and not isinstance(cause, TeacherError):
            return cause
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return None


def _cost(resp: Any) -> float | None:
    try:
        return float(litellm.completion_cost(completion_response=resp))
    except Exception:  # litellm has no price for this model
        return None
