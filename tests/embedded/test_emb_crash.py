"""Crash safety (SQLite and PostgreSQL): a child process records 1,000 turns for 20 users with
its worker flushing, and is killed with SIGKILL - once at an arbitrary point, once while a
flush's LLM call is in flight, once while at least three users' flushes are in flight at
the same time (the worker runs them concurrently). A new process then flushes everything.

Exactly once, checked two ways:
* in the store: the flush log (written in the same transaction as a flush's results) lists
  every turn whose ``record`` returned, and no turn twice (across the dead child's committed
  flushes and the recovery's);
* by the stand-in LLM of the recovery process: it is sent exactly the turns the child had not
  committed, each once - so no committed turn is ever processed again.
"""

from __future__ import annotations

import collections
import signal
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from embedded.emb_support import MANUAL, DbTarget, tapped_settings

from memobase_integrations.backends.embedded import EmbeddedBackend
from memobase_integrations.engine import schema as t

CHILD = Path(__file__).with_name("emb_child.py")
USERS, TURNS = 20, 1000


def run_child_until_killed(db: DbTarget, *, delay: float, kill_when: str) -> list[str]:
    """Start the recording child; SIGKILL it when ``kill_when`` happens. Returns the turn ids
    whose ``record`` had returned."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), "record", *db.argv(), str(USERS), str(TURNS), str(delay)],
        stdout=subprocess.PIPE,
        text=True,
    )
    receipts: list[str] = []
    killed_in_flight = False
    assert child.stdout is not None
    # Never hang: if the expected moment does not come, the child dies after a minute anyway.
    guard = threading.Timer(60, child.kill)
    guard.start()
    try:
        for line in child.stdout:
            kind, _, rest = line.strip().partition(" ")
            if kind == "R":
                receipts.append(rest)
            if kill_when == "midway" and len(receipts) >= TURNS // 2:
                break
            if kill_when == "in_flight" and kind == "L" and rest.endswith("slow"):
                # That LLM call is held for several seconds: its flush cannot have committed.
                killed_in_flight = True
                break
            # Several slow calls in flight at once: one per flush (a flush's calls are
            # sequential), so several users' flushes are cut off mid-way.
            concurrent = kind == "L" and rest.endswith("slow") and int(rest.split()[1]) >= 3
            if kill_when == "concurrent" and concurrent:
                killed_in_flight = True
                break
            # (On "DONE" the child keeps its worker running: in_flight waits for its next call.)
    finally:
        guard.cancel()
        child.send_signal(signal.SIGKILL)
        child.wait(30)
        child.stdout.close()
    assert kill_when == "midway" or killed_in_flight
    assert child.returncode == -signal.SIGKILL
    return receipts


def read_store(db: DbTarget) -> tuple[list[tuple[str, list[str]]], set[str], set[str]]:
    """The flush log (owner, turn ids), the turn ledger, and the turns left ``processing``."""
    engine = sa.create_engine(db.url, **db.engine_options)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(t.flushes.c.owner, t.flushes.c.turn_ids)).all()
        ledger = set(conn.execute(sa.select(t.turns.c.turn_id)).scalars())
        leased = set(
            conn.execute(
                sa.select(t.buffer.c.turn_id).where(t.buffer.c.status == "processing")
            ).scalars()
        )
    engine.dispose()
    return [(r.owner, list(r.turn_ids)) for r in rows], ledger, leased


@pytest.mark.parametrize("kill_when", ["midway", "in_flight", "concurrent"])
def test_sigkill_loses_nothing_and_processes_nothing_twice(db: DbTarget, kill_when: str) -> None:
    receipts = run_child_until_killed(
        db, delay=0.0 if kill_when == "midway" else 10.0, kill_when=kill_when
    )
    assert len(receipts) >= 200

    before, ledger, leased = read_store(db)
    committed_by_child = [turn for _, turns in before for turn in turns]
    assert set(receipts) <= ledger  # every returned record is durable
    if kill_when != "midway":
        assert leased  # the killed flush left its claimed turns "processing"
    if kill_when == "concurrent":
        # Several users' flushes were cut off: their rows are all left leased.
        leased_users = {turn.split("-")[1] for turn in leased}
        assert len(leased_users) >= 3

    settings, tap, _ = tapped_settings()
    recovery = EmbeddedBackend(
        db.url,
        engine_options=dict(db.engine_options),
        llm=settings,
        policy=MANUAL,
        start_worker=False,
        lease_seconds=1.0,
    )
    try:
        for k in range(USERS):
            recovery.flush(uuid.uuid5(uuid.NAMESPACE_URL, f"crash-user-{k}"))
        assert recovery.status().pending_turns == 0
    finally:
        recovery.close(timeout=5)

    after, _, still_leased = read_store(db)
    assert still_leased == set()
    everything = [turn for _, turns in after for turn in turns]
    counts = collections.Counter(everything)
    assert [turn for turn, n in counts.items() if n > 1] == []  # none twice
    assert set(everything) == ledger  # all recorded turns processed (receipts included)

    sent_by_recovery = [m for markers in tap.summarized_markers() for m in markers]
    assert collections.Counter(sent_by_recovery).most_common(1)[0][1] == 1
    assert set(sent_by_recovery) == ledger - set(committed_by_child)
    assert not set(sent_by_recovery) & set(committed_by_child)
    # Work a dead process left under its lease was taken over, not skipped.
    assert leased <= set(sent_by_recovery)
