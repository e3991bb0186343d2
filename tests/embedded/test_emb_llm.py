"""``LLMClient``: what it sends (step header, model, temperature, max_tokens), what it counts,
and that every failure is an ``LLMError`` naming the step and never the key."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from embedded.emb_support import completion
from pydantic import SecretStr

from memobase_integrations.engine.llm import LLMClient
from memobase_integrations.errors import ConfigurationError, LLMError
from memobase_integrations.settings import LLMSettings

SECRET = "sk-test-very-secret-key-123"


def client_for(handler: Any, **settings: Any) -> tuple[LLMClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)  # type: ignore[no-any-return]

    llm = LLMSettings(
        base_url="http://llm.test/v1",
        api_key=SecretStr(SECRET),
        http_client=httpx.Client(transport=httpx.MockTransport(record)),
        async_http_client=httpx.AsyncClient(transport=httpx.MockTransport(record)),
        max_retries=0,
        **settings,
    )
    return LLMClient(llm), seen


def answer(text: str | None) -> Any:
    return lambda request: httpx.Response(200, json=completion(text))


def test_complete_sends_step_header_model_temperature_and_max_tokens() -> None:
    llm, seen = client_for(
        answer("- fact"), best_model="big", summary_model="small", temperature=0.3, max_tokens=77
    )
    assert llm.complete("entry_summary", "sys", "usr") == "- fact"
    assert llm.complete("extract_profile", "sys2", "usr2") == "- fact"
    first, second = (json.loads(r.content) for r in seen)
    assert seen[0].headers["X-Memobase-Step"] == "entry_summary"
    assert seen[1].headers["X-Memobase-Step"] == "extract_profile"
    assert first["model"] == "small" and second["model"] == "big"  # summary steps use summary_model
    assert first["temperature"] == 0.3 and first["max_tokens"] == 77
    assert first["messages"] == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "usr"},
    ]
    usage = llm.usage()
    assert usage["entry_summary"].calls == 1 and usage["entry_summary"].prompt_tokens == 1
    assert llm.calls == 2


async def test_acomplete_uses_the_async_client() -> None:
    llm, seen = client_for(answer("ok"))
    assert await llm.acomplete("merge_profile", "s", "u") == "ok"
    assert seen[0].headers["X-Memobase-Step"] == "merge_profile"


@pytest.mark.parametrize(
    ("handler", "fragment"),
    [
        (lambda r: (_ for _ in ()).throw(httpx.ReadTimeout("t", request=r)), "timed out"),
        (lambda r: (_ for _ in ()).throw(httpx.ConnectError("refused", request=r)), "reached"),
        (lambda r: httpx.Response(500, json={"error": {"message": SECRET}}), "HTTP 500"),
        (lambda r: httpx.Response(401, json={"error": {"message": "bad key"}}), "401"),
        (lambda r: httpx.Response(429, json={"error": {"message": "slow"}}), "rate limited"),
        (answer(None), "no text"),
    ],
)
def test_failures_name_the_step_and_never_the_key(handler: Any, fragment: str) -> None:
    llm, _ = client_for(handler)
    with pytest.raises(LLMError) as info:
        llm.complete("merge_profile", "s", "u")
    text = f"{info.value} {info.value!r}"
    assert "'merge_profile'" in text and fragment in text
    assert SECRET not in text
    assert llm.usage()["merge_profile"].failures == 1


def test_empty_string_answer_is_returned_as_is() -> None:
    llm, _ = client_for(answer(""))
    assert llm.complete("entry_summary", "s", "u") == ""


def test_repr_and_settings_never_show_the_key() -> None:
    llm, _ = client_for(answer("x"))
    assert SECRET not in repr(llm) and SECRET not in repr(llm.settings)


def test_no_llm_configured_is_a_configuration_error() -> None:
    llm = LLMClient(LLMSettings())
    assert not llm.configured
    with pytest.raises(ConfigurationError, match="OPENAI_API_KEY"):
        llm.complete("entry_summary", "s", "u")


def test_embed_batches_and_checks_dimensions() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        data = [
            {"object": "embedding", "index": i, "embedding": [float(i), 1.0, 0.0]}
            for i, _ in enumerate(body["input"])
        ]
        return httpx.Response(
            200,
            json={
                "object": "list",
                "data": list(reversed(data)),  # out of order on purpose
                "model": body["model"],
                "usage": {"prompt_tokens": 3, "total_tokens": 3},
            },
        )

    llm, seen = client_for(handler, enable_embeddings=True, embedding_dim=3)
    assert llm.embed(["a", "b"]) == [[0.0, 1.0, 0.0], [1.0, 1.0, 0.0]]
    body = json.loads(seen[0].content)
    assert body["dimensions"] == 3 and seen[0].headers["X-Memobase-Step"] == "embedding"
    wrong, _ = client_for(handler, enable_embeddings=True, embedding_dim=8)
    with pytest.raises(LLMError, match="embedding_dim"):
        wrong.embed(["a"])
    off, _ = client_for(handler)
    with pytest.raises(ConfigurationError, match="enable_embeddings"):
        off.embed(["a"])


def finished(text: str, finish_reason: str) -> Any:
    def handler(request: httpx.Request) -> httpx.Response:
        body = completion(text)
        body["choices"][0]["finish_reason"] = finish_reason
        return httpx.Response(200, json=body)

    return handler


@pytest.mark.parametrize(
    ("finish_reason", "fragment"),
    [("length", "max_tokens (1024)"), ("content_filter", "content filter")],
)
async def test_an_answer_the_endpoint_did_not_finish_is_an_error(
    finish_reason: str, fragment: str
) -> None:
    """Cut at max_tokens or stopped by a filter: the text may look complete, but is not."""
    llm, _ = client_for(finished("- User's name is Gus. // info", finish_reason))
    with pytest.raises(LLMError, match=f"finish_reason={finish_reason}") as info:
        llm.complete("entry_summary", "s", "u")
    assert fragment in str(info.value) and "'entry_summary'" in str(info.value)
    with pytest.raises(LLMError, match=finish_reason):
        await llm.acomplete("entry_summary", "s", "u")
    assert llm.usage()["entry_summary"].failures == 2
    done, _ = client_for(finished("- User's name is Gus. // info", "stop"))
    assert done.complete("entry_summary", "s", "u") == "- User's name is Gus. // info"


@pytest.mark.parametrize(
    "vectors",
    [
        [[1.0, 0.0, 0.0], [1.0, 0.0]],  # two sizes in one answer
        [[1.0, float("nan"), 0.0]],  # not a number
        [["a", "b", "c"]],  # not numbers at all
    ],
)
def test_unusable_embeddings_are_an_error_whatever_the_model(vectors: list[list[Any]]) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
        body = json.dumps({"object": "list", "data": data, "model": "m"})  # NaN as NaN
        return httpx.Response(200, content=body, headers={"content-type": "application/json"})

    # A model that takes no ``dimensions``: no size was asked for, yet one answer has one size.
    llm, _ = client_for(
        handler, enable_embeddings=True, embedding_model="nomic-embed-text", embedding_dim=3
    )
    with pytest.raises(LLMError, match="embedding"):
        llm.embed(["x"] * len(vectors))
