"""Can mem0 run offline? Run it unchanged against the stand-in served on a loopback URL.

mem0's OSS ``Memory.from_config`` builds its own ``openai`` clients from a base URL, so this
check uses the URL route (no client swapping): one ``add`` and one ``search`` with an
OpenAI-compatible LLM + embedder on 127.0.0.1 and Qdrant in memory. The answer, or the exact
error text, goes into the report.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from benchmarks.llm import ServedBenchLLM

__all__ = [
    "LockedVectorStore",
    "make_mem0",
    "mem0_config",
    "mem0_documented_prompt",
    "mem0_offline_check",
]


def mem0_config(url: str, history_db: Path, *, collection: str) -> dict[str, Any]:
    """mem0 OSS config: OpenAI-compatible LLM and embedder at ``url``, Qdrant in memory."""
    return {
        "llm": {
            "provider": "openai",
            "config": {"model": "stand-in", "api_key": "placeholder-bench", "openai_base_url": url},
        },
        "embedder": {
            "provider": "openai",
            "config": {
                "model": "stand-in-embed",
                "api_key": "placeholder-bench",
                "openai_base_url": url,
                "embedding_dims": 64,
            },
        },
        "vector_store": {
            "provider": "qdrant",
            "config": {
                "collection_name": collection,
                "embedding_model_dims": 64,
                "path": ":memory:",
            },
        },
        "history_db_path": str(history_db),
    }


def mem0_documented_prompt(results: list[dict[str, Any]]) -> str:
    """mem0's README chat example: the hits as ``- memory`` lines under "User Memories"."""
    lines = "\n".join(f"- {r.get('memory', '')}" for r in results)
    return f"Answer the question based on query and memories.\nUser Memories:\n{lines}"


class LockedVectorStore:
    """mem0's vector store with every call serialised by one lock.

    Qdrant's local (in-process) mode is not thread-safe: a ``search`` on the turn while a
    background ``add`` inserts fails inside numpy. A Qdrant server serialises such requests
    itself; this lock does the same for the local mode, and only around the store calls
    (the ``add``'s LLM extraction runs unlocked).
    """

    def __init__(self, store: Any) -> None:
        self._store = store
        self._lock = threading.RLock()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        if not callable(attr):
            return attr

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return attr(*args, **kwargs)

        return locked


def make_mem0(url: str, workdir: Path, tag: str, *, background: bool = False) -> Any:
    """A fresh OSS ``mem0.Memory`` for one system's run (its own collection and history DB).
    mem0 builds its own ``openai`` clients from the URL: it runs unchanged."""
    os.environ.setdefault("MEM0_TELEMETRY", "False")  # no phoning home (read at import)
    os.environ.setdefault("MEM0_DIR", str(workdir / "mem0"))
    try:
        from mem0 import Memory
    except ImportError as exc:
        raise RuntimeError(
            f"mem0 is not installed ({exc}); pip install 'memobase-integrations[bench]'"
        ) from exc
    memory = Memory.from_config(mem0_config(url, workdir / f"{tag}-history.db", collection=tag))
    if background:  # adds run in another thread than searches: see LockedVectorStore
        memory.vector_store = LockedVectorStore(memory.vector_store)
    return memory


def mem0_offline_check(llm: ServedBenchLLM, workdir: Path) -> str:
    """One sentence for the report: what ran, or exactly why it could not."""
    os.environ.setdefault("MEM0_TELEMETRY", "False")
    try:
        import mem0
        from mem0 import Memory
    except ImportError as exc:
        return (
            f"mem0 could not be imported ({exc}); install the bench extra: "
            "pip install 'memobase-integrations[bench]'."
        )
    url = llm.url_for("mem0-offline-check")
    try:
        config = mem0_config(url, workdir / "mem0-check.db", collection="check")
        memory: Any = Memory.from_config(config)
        memory.add(
            [{"role": "user", "content": "My name is Alice. I like green tea."}],
            user_id="offline-check",
        )
        found = memory.search("tea", filters={"user_id": "offline-check"})
        memory.close()
        hits = [r.get("memory") for r in found.get("results", [])]
        counts = llm.counts("mem0-offline-check")
        return (
            f"mem0ai {getattr(mem0, '__version__', '?')} runs offline: OpenAI-compatible LLM "
            f"and embedder at a loopback URL, Qdrant in memory (path ':memory:'), "
            f"MEM0_TELEMETRY=False; one add + one search made {counts.llm_calls} LLM and "
            f"{counts.embedding_calls} embedding calls and found {hits!r}."
        )
    except Exception as exc:
        return f"mem0 could not run offline: {type(exc).__name__}: {exc}"
