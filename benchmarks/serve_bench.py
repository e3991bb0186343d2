"""Latency of ``memobase-integrations serve`` beside the real Memobase server's recorded timings.

Runs ``serve`` as its CLI runs it (a child process, SQLite or PostgreSQL, the flush worker in
its own process) against the project's stand-in LLM served over HTTP on loopback (rules,
not a model; it answers in about a millisecond, like the scripted stub the real server was
timed with). Two parts:

1. **Sequential**, as ``10_timings.json`` measured the real server: one httpx client, two
   warm-up calls, then N samples each of insert (small chat, ``wait_process`` false and true,
   a fresh user per sample), profile and context (a user with a processed profile and
   event). p50/p95 client-side, beside the real server's from its recorded raw samples
   (``serve_reference_timings.json``).
2. **Under load** (no real-server counterpart was recorded): 8 clients insert for 100 users
   while the worker processes and 2 readers read contexts; p50/p95/p99 of insert and context,
   and the error count (must be 0).

Times drift between runs and machines; the same machine class (2 cores, loopback) was used
for the reference. Run from the repository root::

    python benchmarks/serve_bench.py      # -> benchmarks/results/serve_latest.{json,md}
    python benchmarks/serve_bench.py --postgres-url postgresql+psycopg://localhost/test
    python benchmarks/serve_bench.py --quick --out /tmp/serve-bench

SQLite always; PostgreSQL too with ``--postgres-url`` (default ``$MEMOBASE_TEST_POSTGRES_URL``),
in a scratch database created next to it and dropped afterwards.

Needs the ``server`` extra.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ParamSpec

import httpx
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from memobase_integrations.testing import LABEL, StandInLLM  # noqa: E402

REFERENCE = Path(__file__).with_name("serve_reference_timings.json")
IDLE_FLUSH_SECONDS = 1.0
RESULTS = Path(__file__).parent / "results"

#: Our measurement -> the row of the real server's recording it compares with.
_NO_PROCESSING = "(buffer not full, no processing)"
COMPARED = {
    "insert_small_wait_false": f"insert_small_chat_wait_process_false {_NO_PROCESSING}",
    "insert_small_wait_true": f"insert_small_chat_wait_process_true {_NO_PROCESSING}",
    "get_profile_default": "get_profile_default",
    "get_context_default": "get_context_default",
}


def _chat(*lines: str) -> list[dict[str, str]]:
    return [{"role": ("user", "assistant")[i % 2], "content": t} for i, t in enumerate(lines)]


INTRO = _chat(
    "Hi! My name is Alice Chen and I'm a software engineer at Acme Corp.",
    "Nice to meet you, Alice! What do you like to do outside of work?",
    "I love hiking in the mountains on weekends. I live in Berlin.",
    "Berlin is a great base for weekend trips to the Alps.",
)
SMALL = _chat(
    "Long day at work, but the evening run by the river helped. I live in Hamburg.",
    "Glad the run helped you unwind!",
)


def blob(messages: list[dict[str, str]]) -> dict[str, Any]:
    return {"blob_type": "chat", "blob_data": {"messages": messages}}


def percentile(samples: list[float], p: float) -> float:
    """Nearest rank, as ``serve_reference_timings.json`` computes the real server's."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summary(samples: list[float]) -> dict[str, Any]:
    return {
        "n": len(samples),
        "p50_ms": round(percentile(samples, 50), 2),
        "p95_ms": round(percentile(samples, 95), 2),
        "p99_ms": round(percentile(samples, 99), 2),
        "max_ms": round(max(samples), 2),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_database(base_url: str) -> Iterator[str]:
    """A scratch database next to ``base_url``'s (never the test database), dropped after."""
    name = f"memobase_serve_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(base_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def running_serve(database_url: str, llm_url: str, token: str) -> Iterator[str]:
    """``memobase-integrations serve`` in a child process; yields its /api/v1 URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "MEMOBASE_"))}
    env.update(
        OPENAI_BASE_URL=llm_url,
        OPENAI_API_KEY="stand-in",
        MEMOBASE_EMBEDDING_MODEL="text-embedding-3-small",
        MEMOBASE_ACCESS_TOKEN=token,
    )
    args = ["--port", str(port), "--database-url", database_url, "--log-level", "warning"]
    # A buffer idle for a second is processed: the worker works throughout the load phase.
    args += ["--idle-flush-seconds", str(IDLE_FLUSH_SECONDS)]
    child = subprocess.Popen(
        [sys.executable, "-m", "memobase_integrations", "serve", *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{api}/healthcheck", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("serve did not start")
            time.sleep(0.1)
        yield api
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(timeout=120)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


P = ParamSpec("P")


def timed(
    call: Callable[P, httpx.Response], *args: P.args, **kwargs: P.kwargs
) -> tuple[float, httpx.Response]:
    """``call(*args, **kwargs)`` and its wall time in ms (arguments are built before the
    clock starts, and bound now, not at the end of a loop)."""
    started = time.perf_counter()
    response = call(*args, **kwargs)
    return (time.perf_counter() - started) * 1000, response


def checked(response: httpx.Response) -> httpx.Response:
    if response.status_code != 200 or response.json().get("errno") != 0:
        raise RuntimeError(f"unexpected answer: {response.status_code} {response.text[:200]}")
    return response


def sequential(api: str, token: str, n: int) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {k: [] for k in COMPARED}
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=api, headers=headers, timeout=120) as c:
        for key, wait in (("insert_small_wait_false", "false"), ("insert_small_wait_true", "true")):
            for i in range(n + 2):
                user = str(uuid.uuid4())  # a fresh user per sample, as recorded
                checked(c.post("/users", json={"id": user}))
                ms, r = timed(
                    c.post, f"/blobs/insert/{user}", params={"wait_process": wait}, json=blob(SMALL)
                )
                checked(r)
                if i >= 2:
                    samples[key].append(ms)
        reader = str(uuid.uuid4())
        checked(c.post("/users", json={"id": reader}))
        checked(c.post(f"/blobs/insert/{reader}", json=blob(INTRO)))
        checked(c.post(f"/users/buffer/{reader}/chat", params={"wait_process": "true"}))
        for key, path in (
            ("get_profile_default", f"/users/profile/{reader}"),
            ("get_context_default", f"/users/context/{reader}"),
        ):
            for i in range(n + 2):
                ms, r = timed(c.get, path)
                checked(r)
                if i >= 2:
                    samples[key].append(ms)
    return samples


def under_load(
    api: str, token: str, clients: int, users: int, turns: int
) -> tuple[dict[str, list[float]], int, int]:
    """Inserts from ``clients`` threads for ``users`` users, 2 context readers beside them.
    Returns the samples, the number of failed requests and of successful inserts."""
    headers = {"Authorization": f"Bearer {token}"}
    ids = [str(uuid.uuid4()) for _ in range(users)]
    with httpx.Client(base_url=api, headers=headers, timeout=120) as c:
        for user in ids:
            checked(c.post("/users", json={"id": user}))
    inserts: list[float] = []
    contexts: list[float] = []
    failures = 0
    lock = threading.Lock()
    done = threading.Event()

    def writer(k: int) -> None:
        nonlocal failures
        rng = random.Random(k)
        order = [u for u in ids for _ in range(turns)]
        rng.shuffle(order)
        with httpx.Client(base_url=api, headers=headers, timeout=120) as c:
            for user in order:
                ms, r = timed(c.post, f"/blobs/insert/{user}", json=blob(SMALL))
                with lock:
                    if r.status_code == 200 and r.json()["errno"] == 0:
                        inserts.append(ms)
                    else:
                        failures += 1

    def reader(k: int) -> None:
        nonlocal failures
        rng = random.Random(1000 + k)
        with httpx.Client(base_url=api, headers=headers, timeout=120) as c:
            while not done.is_set():
                user = rng.choice(ids)
                ms, r = timed(c.get, f"/users/context/{user}")
                with lock:
                    if r.status_code == 200 and r.json()["errno"] == 0:
                        contexts.append(ms)
                    else:
                        failures += 1

    writers = [threading.Thread(target=writer, args=(k,)) for k in range(clients)]
    readers = [threading.Thread(target=reader, args=(k,)) for k in range(2)]
    for t in writers + readers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    for t in readers:
        t.join()
    return {"insert": inserts, "context": contexts}, failures, len(inserts)


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# `serve` latency beside the real Memobase server",
        "",
        f"Run {report['run_at']} on {report['machine']['cpus']} CPUs "
        f"(Python {report['machine']['python']}; 1-minute load average "
        f"{report['machine']['load_average_1min'][0]} at the start, "
        f"{report['machine']['load_average_1min'][1]} at the end: other work on the machine "
        f"shows in the p95s); LLM: {LABEL}, served over HTTP on loopback; "
        f"the flush worker in its own process, idle flush after {IDLE_FLUSH_SECONDS:g} s. "
        "Client-side milliseconds on 127.0.0.1. The real "
        "server's figures are its recorded ones (PostgreSQL + Redis, same machine class).",
    ]
    for store, run in report["stores"].items():
        lines += [
            "",
            f"## {store}: sequential, one client (as the real server was timed)",
            "",
            "| call | n (serve / real) | serve p50 | serve p95 | real server p50 | real p95 |",
            "|---|---|---|---|---|---|",
        ]
        for key, row in run["sequential"].items():
            ours, ref = row["serve"], row["real_server"]
            lines.append(
                f"| {key} | {ours['n']} / {ref['n']} | {ours['p50_ms']} | {ours['p95_ms']} | "
                f"{ref['p50_ms']} | {ref['p95_ms']} |"
            )
        load = run["under_load"]
        lines += [
            "",
            f"## {store}: under load ({load['clients']} clients inserting for {load['users']} "
            "users, 2 context readers, the worker processing)",
            "",
            "| call | n | p50 | p95 | p99 | max |",
            "|---|---|---|---|---|---|",
        ]
        for key in ("insert", "context"):
            x = load[key]
            lines.append(
                f"| {key} | {x['n']} | {x['p50_ms']} | {x['p95_ms']} | {x['p99_ms']} | "
                f"{x['max_ms']} |"
            )
        lines.append(
            f"\nFailed requests under load: {load['failures']}; batches the worker processed "
            f"meanwhile (entry-summary calls): {load['processed_batches']}."
        )
    lines += [
        "",
        "The real server was not timed under load (no recorded counterpart).",
        "",
        "Reference: " + report["reference"],
        "",
    ]
    return "\n".join(lines)


def run_store(
    database_url: str,
    llm_url: str,
    stand_in: StandInLLM,
    samples: int,
    load: tuple[int, int, int],
) -> dict[str, Any]:
    token = secrets.token_urlsafe(24)
    reference = json.loads(REFERENCE.read_text())
    clients, users, turns = load
    with running_serve(database_url, llm_url, token) as api:
        seq = sequential(api, token, samples)
        before = stand_in.calls_by_step["entry_summary"]
        measured, failures, inserted = under_load(api, token, clients, users, turns)
        batches = stand_in.calls_by_step["entry_summary"] - before
    return {
        "sequential": {
            key: {"serve": summary(values), "real_server": reference["rows"][COMPARED[key]]}
            for key, values in seq.items()
        },
        "under_load": {
            "clients": clients,
            "users": users,
            "turns_per_client_and_user": turns,
            "inserted": inserted,
            "failures": failures,
            "processed_batches": batches,
            "insert": summary(measured["insert"]),
            "context": summary(measured["context"]),
        },
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get("MEMOBASE_TEST_POSTGRES_URL"),
        help="also run on a scratch PostgreSQL database next to this one "
        "(default: $MEMOBASE_TEST_POSTGRES_URL)",
    )
    parser.add_argument("--samples", type=int, default=100, help="sequential samples per call")
    parser.add_argument("--quick", action="store_true", help="a tiny run (smoke test)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the results")
    args = parser.parse_args(argv)
    samples = 10 if args.quick else args.samples
    load = (2, 10, 1) if args.quick else (8, 100, 3)
    stand_in = StandInLLM()
    stores: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, stand_in.serve() as llm_url:
        sqlite_url = f"sqlite:///{Path(tmp) / 'serve-bench.db'}"
        load_before = os.getloadavg()
        stores["SQLite"] = run_store(sqlite_url, llm_url, stand_in, samples, load)
        if args.postgres_url:
            with postgres_database(args.postgres_url) as pg_url:
                stores["PostgreSQL"] = run_store(pg_url, llm_url, stand_in, samples, load)
        load_after = os.getloadavg()
    report: dict[str, Any] = {
        "run_at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            # Other work on the machine shows in the tails: the 1-minute load average.
            "load_average_1min": [round(load_before[0], 2), round(load_after[0], 2)],
        },
        "config": {"samples": samples, "llm": LABEL},
        "stores": stores,
        "llm_calls": stand_in.calls,
        "reference": json.loads(REFERENCE.read_text())["source"],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "serve_latest.json").write_text(json.dumps(report, indent=1) + "\n")
    (args.out / "serve_latest.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
