"""langchain-tests standard suites (`RetrieversIntegrationTests`, `ToolsUnitTests`,
`ToolsIntegrationTests` from the `langchain-tests` package, run as they ship: no standard test
overridden) for every retriever and tool of `langchain_memobase`."""

from __future__ import annotations

from typing import Any, ClassVar

from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import BaseTool
from langchain_tests.integration_tests import RetrieversIntegrationTests, ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests
from support.spy import SpyBackend

from langchain_memobase import (
    MemobaseAddProfileTool,
    MemobaseEventRetriever,
    MemobaseProfileRetriever,
    MemobaseProfileTool,
    MemobaseSearchEventsTool,
)
from memobase_integrations.facade import Memobase
from memobase_integrations.ids import to_user_uuid

USER = "alice@example.com"


def seeded_memobase() -> Memobase:
    """A user with more profile rows and matching events than any test asks for."""
    backend = SpyBackend()
    uid = to_user_uuid(USER)
    backend.add_fact(uid, "basic_info", "name", "Alice")
    backend.add_fact(uid, "work", "title", "airline pilot")
    backend.add_fact(uid, "interest", "games", "plays chess on weekends")
    backend.add_fact(uid, "interest", "sports", "runs marathons")
    backend.add_fact(uid, "life_event", "travel", "moved to Lisbon in 2024")
    for tip in (
        "Alice flew her first long-haul route",
        "Alice won a chess tournament",
        "Alice ran the Lisbon marathon",
        "Alice adopted a cat",
    ):
        backend.add_event(uid, tip, {"emotion": "happy"})
    return Memobase(backend)


class TestProfileRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return MemobaseProfileRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"memobase": seeded_memobase(), "user_id": USER}

    @property
    def retriever_query_example(self) -> str:
        return "What does Alice do for work?"


class TestEventRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> type[BaseRetriever]:
        return MemobaseEventRetriever

    @property
    def retriever_constructor_params(self) -> dict[str, Any]:
        return {"memobase": seeded_memobase(), "user_id": USER}

    @property
    def retriever_query_example(self) -> str:
        return "alice"


class _ToolParams:
    tool_class: ClassVar[type[BaseTool]]
    example: ClassVar[dict[str, Any]]

    @property
    def tool_constructor(self) -> type[BaseTool]:
        return self.tool_class

    @property
    def tool_constructor_params(self) -> dict[str, Any]:
        return {"memobase": seeded_memobase(), "user_id": USER}

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return dict(self.example)


class TestProfileToolUnit(_ToolParams, ToolsUnitTests):
    tool_class = MemobaseProfileTool
    example: ClassVar[dict[str, Any]] = {"topics": ["work"]}


class TestProfileToolIntegration(_ToolParams, ToolsIntegrationTests):
    tool_class = MemobaseProfileTool
    example: ClassVar[dict[str, Any]] = {"topics": ["work"]}


class TestSearchEventsToolUnit(_ToolParams, ToolsUnitTests):
    tool_class = MemobaseSearchEventsTool
    example: ClassVar[dict[str, Any]] = {"query": "chess tournament", "k": 2}


class TestSearchEventsToolIntegration(_ToolParams, ToolsIntegrationTests):
    tool_class = MemobaseSearchEventsTool
    example: ClassVar[dict[str, Any]] = {"query": "chess tournament", "k": 2}


class TestAddProfileToolUnit(_ToolParams, ToolsUnitTests):
    tool_class = MemobaseAddProfileTool
    example: ClassVar[dict[str, Any]] = {
        "topic": "interest",
        "sub_topic": "food",
        "content": "loves pastel de nata",
    }


class TestAddProfileToolIntegration(_ToolParams, ToolsIntegrationTests):
    tool_class = MemobaseAddProfileTool
    example: ClassVar[dict[str, Any]] = {
        "topic": "interest",
        "sub_topic": "food",
        "content": "loves pastel de nata",
    }
