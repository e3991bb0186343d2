"""One behaviour: ``langchain_memobase`` and ``llamaindex_memobase`` give a model the same
tools, with the same names, descriptions, arguments, output text and failure behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from memobase_integrations import Memobase
from memobase_integrations.errors import ConfigurationError, ServiceUnavailableError
from memobase_integrations.testing import StandInLLM

lc = pytest.importorskip("langchain_memobase.tools")
li = pytest.importorskip("llamaindex_memobase.tools")

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("read_profile", {}),
    ("read_profile", {"topics": ["work"]}),
    ("search_memory", {"query": "hiking in the Dolomites"}),
    ("search_memory", {"query": "Dolomites", "limit": 1}),
    ("search_memory", {"query": "zebra"}),
]


@pytest.fixture
def mb(tmp_path: Path) -> Iterator[Memobase]:
    memobase = Memobase.embedded(
        f"sqlite:///{tmp_path / 'memobase.db'}", llm=StandInLLM().settings(), start_worker=False
    )
    alice = memobase.user("alice")
    for said in ("I work as a baker.", "I love hiking in the Dolomites.", "I love jazz music."):
        alice.record([{"role": "user", "content": said}, {"role": "assistant", "content": "Nice!"}])
        alice.flush()
    yield memobase
    memobase.close()


def _both(mb: Memobase, **options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    lc_tools = {t.name: t for t in lc.memobase_tools(mb, "alice", **options)}
    li_tools = {t.metadata.name: t for t in li.memobase_tools(mb, "alice", **options)}
    return lc_tools, li_tools


def test_same_names_descriptions_and_arguments(mb: Memobase) -> None:
    options = {"allow_writes": True, "allow_profile_writes": True}
    lc_tools, li_tools = _both(mb, **options)
    assert list(lc_tools) == list(li_tools)
    assert list(lc_tools) == ["search_memory", "read_profile", "manage_memory", "add_profile_entry"]
    for name, tool in lc_tools.items():
        assert tool.description == li_tools[name].metadata.description, name
        li_schema = li_tools[name].metadata.get_parameters_dict()
        assert tool.args == li_schema["properties"], name
        lc_required = tool.get_input_schema().model_json_schema().get("required", [])
        assert lc_required == li_schema.get("required", []), name


async def test_same_output_text_sync_and_async(mb: Memobase) -> None:
    lc_tools, li_tools = _both(mb)
    for name, args in CALLS:
        lc_out = await asyncio.to_thread(lc_tools[name].invoke, args)
        assert lc_out == await lc_tools[name].ainvoke(args)
        assert lc_out == li_tools[name].call(**args).content
        assert lc_out == (await li_tools[name].acall(**args)).content
    # what the model reads: dated, compact, no ids, no Memobase bookkeeping
    hit = await lc_tools["search_memory"].ainvoke({"query": "Dolomites", "limit": 1})
    assert hit.startswith("- 20") and "Dolomites" in hit and len(hit.splitlines()) == 1
    assert "[mention" not in hit and "//" not in hit
    profile = await lc_tools["read_profile"].ainvoke({})
    assert "work::title: baker (updated 20" in profile and "[mention" not in profile


async def test_same_failure_behaviour(mb: Memobase, monkeypatch: pytest.MonkeyPatch) -> None:
    def down(*args: Any, **kwargs: Any) -> Any:
        raise ServiceUnavailableError("Memobase is down; retry later.")

    async def adown(*args: Any, **kwargs: Any) -> Any:
        down()

    for method in ("profile", "search_events"):
        monkeypatch.setattr(mb.backend, method, down)
        monkeypatch.setattr(mb.backend, f"a{method}", adown)
    seen: list[tuple[str, str]] = []
    lc_tools, li_tools = _both(mb, on_error=lambda exc, action: seen.append(("x", action)))
    for name, args in CALLS:
        lc_out = await lc_tools[name].ainvoke(args)
        assert lc_out == "Memory is unavailable right now: Memobase is down; retry later."
        assert lc_out == li_tools[name].call(**args).content
    assert len(seen) == 2 * len(CALLS)
    lc_strict, li_strict = _both(mb, strict=True)
    with pytest.raises(ServiceUnavailableError):
        lc_strict["read_profile"].invoke({})
    with pytest.raises(ServiceUnavailableError):
        await li_strict["read_profile"].acall()


@pytest.mark.parametrize(
    ("options", "names"),
    [
        ({}, ["search_memory", "read_profile"]),
        ({"allow_writes": True}, ["search_memory", "read_profile", "manage_memory"]),
        ({"allow_profile_writes": True}, ["search_memory", "read_profile", "add_profile_entry"]),
    ],
)
def test_same_tools_enabled_by_the_same_options(
    mb: Memobase, options: dict[str, Any], names: list[str]
) -> None:
    lc_tools, li_tools = _both(mb, **options)
    assert list(lc_tools) == list(li_tools) == names


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (
            lambda tools, mb: tools(mb.user("alice"), "bob"),
            "Pass a UserMemory or (memobase, user_id), not both.",
        ),
        (lambda tools, mb: tools("not a facade"), "needs a Memobase or a UserMemory, got str."),
        (
            lambda tools, mb: tools(mb, "bob", user_id_from=lambda _: "bob"),
            "Pass either user_id= (one fixed user) or user_id_from= (resolved per run)",
        ),
    ],
)
def test_same_refusals_of_the_same_arguments(mb: Memobase, call: Any, needle: str) -> None:
    for module in (lc, li):
        with pytest.raises(ConfigurationError) as caught:
            call(module.memobase_tools, mb)
        assert needle in str(caught.value), module.__name__


def test_the_search_options_reach_the_backend_from_both(
    mb: Memobase, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[dict[str, Any]] = []
    real = mb.backend.search_events

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(mb.backend, "search_events", spy)
    lc_tools, li_tools = _both(mb, similarity_threshold=0.5, time_range_in_days=30)
    lc_tools["search_memory"].invoke({"query": "Dolomites"})
    li_tools["search_memory"].call(query="Dolomites")
    assert seen == [{"similarity_threshold": 0.5, "time_range_in_days": 30}] * 2
