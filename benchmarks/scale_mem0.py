"""mem0's store at the same user counts: ``Memory.search`` latency as users grow.

mem0 OSS keeps memories in a vector store; with its default configuration that is a local
Qdrant (``qdrant-client``'s in-process mode; mem0's default puts it on disk at /tmp/qdrant,
here it is ``:memory:``). Its store is seeded directly through mem0's own vector store
object (``memory.vector_store.insert``) with the same number of memories per user as the
Memobase scale seed (5-20, about 12.5), each embedded by the stand-in's embedding function
(the vectors mem0's embedder would get from the endpoint) with the payload mem0 writes
(``data``, ``hash``, ``user_id``, ``created_at``). Then ``search(query, filters={"user_id"})``
is timed for distinct random users; it includes one embedding request to the loopback
endpoint (instant; ~1 ms). Sizes grow cumulatively.

The local mode scans every stored point with the user filter, so this measures mem0 as it
ships by default, not mem0 on a Qdrant server (not available offline here).
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.llm import ServedBenchLLM
from benchmarks.mem0_check import make_mem0
from benchmarks.scale import _WORDS, ScalePoint
from memobase_integrations.testing import embed_text

__all__ = ["run_mem0_scale"]

logger = logging.getLogger("benchmarks")


def _seed(memory: Any, start: int, stop: int, rng: random.Random) -> None:
    vectors: list[list[float]] = []
    payloads: list[dict[str, Any]] = []
    ids: list[str] = []
    stamp = datetime.now(UTC).isoformat()

    def flush() -> None:
        if vectors:
            memory.vector_store.insert(vectors=vectors, payloads=payloads, ids=ids)
            vectors.clear()
            payloads.clear()
            ids.clear()

    for u in range(start, stop):
        for _ in range(rng.randint(5, 20)):
            text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(3, 14)))
            vectors.append(embed_text(text, 64))
            payloads.append(
                {
                    "data": text,
                    "hash": hashlib.md5(text.encode()).hexdigest(),
                    "user_id": f"mem0-scale-{u}",
                    "created_at": stamp,
                }
            )
            ids.append(str(uuid.uuid4()))
        if len(vectors) >= 5000:
            flush()
    flush()


def run_mem0_scale(
    llm: ServedBenchLLM, workdir: Path, sizes: Sequence[int], samples: Sequence[int]
) -> list[ScalePoint]:
    """``samples[i]`` searches at ``sizes[i]`` users (sizes ascending)."""
    points: list[ScalePoint] = []
    rng = random.Random(80)
    try:
        memory = make_mem0(llm.url_for("scale:mem0"), workdir, "mem0-scale")
    except Exception as exc:
        return [
            ScalePoint("mem0", n, error=f"{type(exc).__name__}: {exc}", what="search()")
            for n in sizes
        ]
    seeded = 0
    try:
        for size, n_samples in zip(sizes, samples, strict=True):
            point = ScalePoint("mem0 OSS (local Qdrant)", size, what="search()")
            try:
                t0 = time.perf_counter()
                _seed(memory, seeded, size, rng)
                point.seed_s = time.perf_counter() - t0
                seeded = size
                picks = rng.sample(range(size), min(n_samples, size))
                memory.search("warm up", filters={"user_id": "mem0-scale-0"})
                for i in picks:
                    query = " ".join(rng.choice(_WORDS) for _ in range(4))
                    t0 = time.perf_counter()
                    memory.search(query, filters={"user_id": f"mem0-scale-{i}"})
                    point.context_s.append(time.perf_counter() - t0)
            except Exception as exc:
                point.error = f"{type(exc).__name__}: {exc}"
                logger.exception("mem0 scale at %d users failed", size)
            points.append(point)
            logger.info(
                "scale mem0 %d users: search p95 %.1f ms (%d samples, seeded in %.1fs)",
                size,
                1000 * sorted(point.context_s)[int(0.95 * (len(point.context_s) - 1))]
                if point.context_s
                else float("nan"),
                len(point.context_s),
                point.seed_s,
            )
    finally:
        memory.close()
    return points
