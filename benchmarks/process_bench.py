"""Processing cost of the embedded engine: record + process N conversations on the stand-in LLM.

Prints, per 100 chat messages, the LLM calls (by pipeline step) and prompt/completion tokens
the embedded pipeline spends, and per flush the wall time split into LLM time and the rest
(database, prompt building, parsing: what this package itself costs). The LLM is the offline
stand-in (:mod:`memobase_integrations.testing`), in-process, so "LLM time" here is the
``openai`` client plus the stand-in's rules - with a real model it is seconds, and the
non-LLM part is what stays.

Processing follows Memobase's rule: a user's buffer is processed when it goes over the token
threshold (1024 by default), and whatever is left at the end of a session is flushed (the
app's "session end"). Absolute times depend on the machine; compare runs on one machine.

    python benchmarks/process_bench.py                       # 4 conversations, SQLite file
    python benchmarks/process_bench.py -n 8 --db postgresql+psycopg://postgres@127.0.0.1/test
    python benchmarks/process_bench.py --embeddings --json out.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.conversations import generate
from memobase_integrations.backends.embedded import EmbeddedBackend
from memobase_integrations.engine.llm import EMBEDDING_STEP
from memobase_integrations.ids import to_user_uuid
from memobase_integrations.messages import turn_to_blobs
from memobase_integrations.models import BlobType
from memobase_integrations.settings import FlushPolicy
from memobase_integrations.testing import LABEL, StandInLLM


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("-n", "--conversations", type=int, default=4)
    p.add_argument("--sessions", type=int, default=6, help="sessions per conversation")
    p.add_argument("--turns", type=int, default=25, help="turns per session")
    p.add_argument("--db", default=None, help="database URL (default: a temporary SQLite file)")
    p.add_argument("--threshold", type=int, default=1024, help="buffer token threshold")
    p.add_argument("--embeddings", action="store_true", help="turn embeddings (gists) on")
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> dict[str, Any]:
    conversations = generate(args.conversations, args.sessions, args.turns)
    workdir = tempfile.TemporaryDirectory(prefix="memobase-process-bench-")
    url = args.db or f"sqlite:///{Path(workdir.name) / 'bench.db'}"
    standin = StandInLLM()
    policy = FlushPolicy(
        buffer_token_threshold=args.threshold, idle_flush_seconds=None, flush_on_close=False
    )
    backend = EmbeddedBackend(
        url,
        llm=standin.settings(enable_embeddings=args.embeddings, max_retries=0),
        policy=policy,
        start_worker=False,  # flushes run here, so each one can be timed
    )
    record_ms: list[float] = []
    flush_wall: list[float] = []
    flush_llm: list[float] = []
    messages = 0

    def flush(user: uuid.UUID) -> None:
        llm_before = backend.llm.llm_seconds
        started = time.perf_counter()
        results = backend.flush(user, BlobType.chat)
        wall = time.perf_counter() - started
        if results:
            # One call may process several batches; attribute the time evenly.
            for _ in results:
                flush_wall.append(wall / len(results))
                flush_llm.append((backend.llm.llm_seconds - llm_before) / len(results))

    try:
        for conversation in conversations:
            user = to_user_uuid(f"{conversation.user_id}-{uuid.uuid4().hex[:6]}")
            for s, session in enumerate(conversation.sessions):
                stamp = datetime.combine(session.day, dtime(12, 0), tzinfo=UTC)
                for t, turn in enumerate(session.turns):
                    msgs = [dict(m, created_at=stamp.isoformat()) for m in turn.messages()]
                    blobs = turn_to_blobs(msgs)
                    started = time.perf_counter()
                    backend.record(user, blobs, f"s{s}-t{t}")
                    record_ms.append((time.perf_counter() - started) * 1000)
                    messages += len(msgs)
                    if backend.store.idle_tokens(user, BlobType.chat) > args.threshold:
                        flush(user)
                flush(user)  # session end
        usage = backend.llm.usage()
    finally:
        backend.close(timeout=0)
        workdir.cleanup()

    per100 = 100.0 / max(1, messages)
    chat_steps = {k: v for k, v in usage.items() if k != EMBEDDING_STEP}
    calls = Counter({k: v.calls for k, v in chat_steps.items()})
    non_llm = [w - llm for w, llm in zip(flush_wall, flush_llm, strict=True)]
    return {
        "llm": LABEL,
        "database": "sqlite (temporary file)" if args.db is None else args.db.split("@")[-1],
        "conversations": len(conversations),
        "messages": messages,
        "flushes": len(flush_wall),
        "llm_calls_per_100_messages": round(sum(calls.values()) * per100, 2),
        "llm_calls_by_step_per_100_messages": {k: round(v * per100, 2) for k, v in calls.items()},
        "prompt_tokens_per_100_messages": round(
            sum(v.prompt_tokens for v in chat_steps.values()) * per100, 1
        ),
        "completion_tokens_per_100_messages": round(
            sum(v.completion_tokens for v in chat_steps.values()) * per100, 1
        ),
        "embedding_calls_per_100_messages": round(usage[EMBEDDING_STEP].calls * per100, 2)
        if EMBEDDING_STEP in usage
        else 0.0,
        "flush_ms_p50": _ms(statistics.median(flush_wall)) if flush_wall else None,
        "non_llm_ms_per_flush_p50": _ms(statistics.median(non_llm)) if non_llm else None,
        "non_llm_ms_per_flush_mean": _ms(statistics.fmean(non_llm)) if non_llm else None,
        "record_ms_p50": round(statistics.median(record_ms), 3),
        "record_ms_p95": round(_quantile(record_ms, 0.95), 3),
    }


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(result: dict[str, Any]) -> str:
    lines = [
        f"Embedded processing cost - LLM: {result['llm']}",
        f"database: {result['database']}; {result['conversations']} conversations, "
        f"{result['messages']} messages, {result['flushes']} flushes",
        "",
        "per 100 messages:",
        f"  LLM calls            {result['llm_calls_per_100_messages']:>8}",
    ]
    for step, value in sorted(result["llm_calls_by_step_per_100_messages"].items()):
        lines.append(f"    {step:<18} {value:>8}")
    lines += [
        f"  prompt tokens        {result['prompt_tokens_per_100_messages']:>8}",
        f"  completion tokens    {result['completion_tokens_per_100_messages']:>8}",
        f"  embedding calls      {result['embedding_calls_per_100_messages']:>8}",
        "",
        "per flush:",
        f"  wall time p50        {result['flush_ms_p50']} ms (stand-in LLM in-process)",
        f"  non-LLM time p50     {result['non_llm_ms_per_flush_p50']} ms "
        f"(mean {result['non_llm_ms_per_flush_mean']} ms)",
        "",
        f"record(): p50 {result['record_ms_p50']} ms, p95 {result['record_ms_p95']} ms",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
