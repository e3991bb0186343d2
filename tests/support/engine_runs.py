"""Drive a LlamaIndex chat engine turn in each of its four modes, to completion.

Streaming modes write the answer to memory from a thread (sync) or a task (async); a turn is
only complete when that write has happened, so these helpers wait for it like an app that
consumes the whole stream would.
"""

from __future__ import annotations

from typing import Any, Literal

from llama_index.core.chat_engine.types import BaseChatEngine

Mode = Literal["chat", "achat", "stream_chat", "astream_chat"]
MODES: tuple[Mode, ...] = ("chat", "achat", "stream_chat", "astream_chat")


async def run_turn(engine: BaseChatEngine, mode: Mode, message: str) -> str:
    """One complete turn; returns the answer text."""
    if mode == "chat":
        return str(engine.chat(message))
    if mode == "achat":
        return str(await engine.achat(message))
    if mode == "stream_chat":
        response: Any = engine.stream_chat(message)
        text = "".join(response.response_gen)
        # Newer LlamaIndex keeps the writer thread; older ones end the stream only after the
        # write, so consuming the generator is enough there.
        thread = getattr(response, "write_response_to_history_thread", None)
        if thread is not None:
            thread.join()
        return text
    response = await engine.astream_chat(message)
    text = "".join([token async for token in response.async_response_gen()])
    task = response.awrite_response_to_history_task
    if task is not None:
        await task
    return text
