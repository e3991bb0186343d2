"""Concurrency (SQLite and PostgreSQL): one flush per user at a time, each buffer processed
once, turns kept in order - with 8 threads recording one user while the worker flushes, and
with two processes flushing the same users at the same time."""

from __future__ import annotations

import collections
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from embedded.emb_support import (
    MANUAL,
    BackendFactory,
    DbTarget,
    manual,
    marker_turn,
    tapped_settings,
)

from memobase_integrations.messages import turn_to_blobs

CHILD = Path(__file__).with_name("emb_child.py")


def per_writer_in_order(sequence: list[str]) -> bool:
    """Markers ``mk-<writer>-<n>``: each writer's numbers increase along ``sequence``."""
    last: dict[str, int] = {}
    for marker in sequence:
        _, writer, n = marker.split("-")
        if int(n) <= last.get(writer, -1):
            return False
        last[writer] = int(n)
    return True


def test_eight_threads_recording_one_user_while_the_worker_flushes(
    make_backend: BackendFactory,
) -> None:
    settings, tap, _ = tapped_settings()
    policy = manual(buffer_token_threshold=300, max_process_tokens=2000)
    backend = make_backend(llm=settings, policy=policy)
    user = uuid.uuid4()
    threads, turns = 8, 200
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def writer(w: int) -> None:
        try:
            start.wait()
            for n in range(turns):
                backend.record(user, turn_to_blobs(marker_turn(w, n)), f"mk-{w}-{n}")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    pool = [threading.Thread(target=writer, args=(w,)) for w in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join(120)
    assert errors == []
    backend.flush(user)  # whatever the worker has not taken yet

    flushes = backend.export_user(user)["flushes"]
    assert len(flushes) > 1  # the worker flushed while the threads were recording
    in_store = [turn for f in flushes for turn in f["turn_ids"]]
    assert len(in_store) == threads * turns
    assert collections.Counter(in_store).most_common(1)[0][1] == 1  # none twice
    assert per_writer_in_order(in_store)

    sent = [m for markers in tap.summarized_markers() for m in markers]
    assert sorted(sent) == sorted(in_store)  # the LLM saw every turn exactly once...
    assert per_writer_in_order(sent)  # ...each thread's turns in the order recorded
    assert backend.status(user).pending_turns == 0


def test_two_processes_flushing_the_same_users(db: DbTarget, make_backend: BackendFactory) -> None:
    settings, _, _ = tapped_settings()
    recorder = make_backend(llm=settings, policy=MANUAL, start_worker=False)
    users = [uuid.uuid4() for _ in range(4)]
    for n in range(24):
        for k, user in enumerate(users):
            recorder.record(user, turn_to_blobs(marker_turn(k, n)), f"mk-{k}-{n}")

    order = [str(u) for u in users]
    children = [
        subprocess.Popen(
            [sys.executable, str(CHILD), "flush", *db.argv(), "0.02", "150", *names],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for names in (order, order[::-1])
    ]
    for child in children:
        assert child.stdout is not None and child.stdout.readline().strip() == "READY"
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    outputs = [child.communicate(timeout=120)[0] for child in children]
    assert [child.returncode for child in children] == [0, 0]

    sent_by = [
        [m for line in out.splitlines() if line.startswith("S ") for m in line.split()[1:]]
        for out in outputs
    ]
    assert all(sent_by), "both processes should have processed some batches"
    everything = sent_by[0] + sent_by[1]
    assert collections.Counter(everything).most_common(1)[0][1] == 1  # no turn twice
    assert len(everything) == 4 * 24

    for user in users:
        flushes = recorder.export_user(user)["flushes"]
        assert len(flushes) > 1  # small batches: several per user
        turns = [turn for f in flushes for turn in f["turn_ids"]]
        assert len(turns) == 24 and len(set(turns)) == 24
        assert per_writer_in_order(turns)  # batches committed in recording order
    logs = [f for u in users for f in recorder.export_user(u)["flushes"]]
    assert len({f["owner"].rsplit(":", 1)[0] for f in logs}) == 2  # both processes committed
    assert recorder.status().pending_turns == 0
