"""The demo's LangChain app: ``create_agent`` + ``MemobaseMiddleware``.

Imported only when the demo runs (the core never imports LangChain). Offline, the agent's
model is a fake chat model that can bind tools and answers with :func:`offline_reply`; with
an OpenAI-compatible endpoint configured and ``langchain-openai`` installed it is
``ChatOpenAI``. Either way, the exact messages the model received are captured with a
callback handler (``on_chat_model_start``), which LangChain fires for every chat model.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver

from langchain_memobase import MemobaseMiddleware
from memobase_integrations import Memobase

from .common import DemoSetup, Exchange, offline_reply

__all__ = ["DemoFakeChatModel", "LangChainRunner"]


def _text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    parts = [p if isinstance(p, str) else str(p.get("text", "")) for p in content]
    return "".join(parts)


class DemoFakeChatModel(BaseChatModel):
    """A fake chat model for offline runs: rule-based answers that use the injected memory.

    ``bind_tools`` is a no-op so it works inside ``create_agent`` even with tools.
    """

    @property
    def _llm_type(self) -> str:
        return "memobase-demo-fake"

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> DemoFakeChatModel:  # type: ignore[override]
        return self

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        systems = [_text(m) for m in messages if isinstance(m, SystemMessage)]
        humans = [_text(m) for m in messages if isinstance(m, HumanMessage)]
        reply = offline_reply(systems, humans[-1] if humans else "")
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=reply))])


class _SystemPromptCapture(BaseCallbackHandler):
    """Keeps the system messages of the last chat-model call."""

    def __init__(self) -> None:
        self.system_prompts: list[str] = []

    def on_chat_model_start(
        self, serialized: dict[str, Any], messages: list[list[BaseMessage]], **kwargs: Any
    ) -> None:
        batch = messages[0] if messages else []
        self.system_prompts = [_text(m) for m in batch if isinstance(m, SystemMessage)]


def _chat_model(setup: DemoSetup, notes: list[str]) -> tuple[BaseChatModel, str]:
    if not setup.online:
        return DemoFakeChatModel(), "fake chat model"
    try:
        from langchain_openai import ChatOpenAI  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        notes.append(
            "langchain-openai is not installed, so the LangChain agent chats with the fake "
            "model (memory extraction still uses your endpoint). pip install langchain-openai "
            "to chat with a real model."
        )
        return DemoFakeChatModel(), "fake chat model"
    key = setup.llm.api_key.get_secret_value() if setup.llm.api_key else "not-needed"
    model = ChatOpenAI(model=setup.chat_model, base_url=setup.llm.base_url, api_key=key)
    return model, f"ChatOpenAI {setup.chat_model}"


class LangChainRunner:
    """One agent per demo with an in-memory checkpointer; a new thread per session, so only
    long-term memory carries over from one session to the next."""

    def __init__(
        self,
        memobase: Memobase,
        user_id: str,
        setup: DemoSetup,
        notes: list[str],
        system_prompt: str,
    ) -> None:
        model, model_label = _chat_model(setup, notes)
        self.label = f"create_agent({model_label}, middleware=[MemobaseMiddleware(...)])"
        self._middleware = MemobaseMiddleware(memobase, user_id=user_id, max_token_size=500)
        self._agent = create_agent(
            model,
            tools=[],
            system_prompt=system_prompt,
            middleware=[self._middleware],
            checkpointer=InMemorySaver(),
        )
        self._capture = _SystemPromptCapture()
        self._thread = str(uuid.uuid4())

    def new_session(self) -> None:
        self._thread = str(uuid.uuid4())

    def ask(self, text: str) -> Exchange:
        result = self._agent.invoke(
            {"messages": [HumanMessage(text)]},
            config={"callbacks": [self._capture], "configurable": {"thread_id": self._thread}},
        )
        messages: list[BaseMessage] = list(result["messages"])
        return Exchange(reply=_text(messages[-1]), system_prompts=self._capture.system_prompts)

    def close(self) -> None:
        """Nothing to release: the agent and its checkpointer are plain objects."""
