"""The turn ledger (``mb_turns``) is pruned after ``FlushPolicy.turn_ledger_days``, never
while a turn is still buffered. On SQLite and PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta

import sqlalchemy as sa
from embedded.emb_support import BackendFactory, manual, turn

from memobase_integrations.backends.embedded import EmbeddedBackend
from memobase_integrations.engine import schema as t
from memobase_integrations.engine.store import utcnow
from memobase_integrations.messages import turn_to_blobs
from memobase_integrations.testing import StandInLLM


def ledger(backend: EmbeddedBackend) -> set[str]:
    with backend.store.engine.connect() as conn:
        return set(conn.execute(sa.select(t.turns.c.turn_id)).scalars())


def age_ledger(backend: EmbeddedBackend, days: float, *turn_ids: str) -> None:
    """Backdate the ledger entries of ``turn_ids`` (all when none are named)."""
    update = sa.update(t.turns).values(created_at=utcnow() - timedelta(days=days))
    if turn_ids:
        update = update.where(t.turns.c.turn_id.in_(turn_ids))
    with backend.store.engine.begin() as conn:
        conn.execute(update)


def record(backend: EmbeddedBackend, user: uuid.UUID, turn_id: str) -> bool:
    """Record a turn; True if it was new, False if the ledger said it was a replay."""
    receipt = backend.record(user, turn_to_blobs(turn(f"I like tea ({turn_id}).")), turn_id)
    return not receipt.duplicate


def test_old_processed_turn_ids_are_forgotten_and_buffered_ones_kept(
    make_backend: BackendFactory,
) -> None:
    backend = make_backend(
        llm=StandInLLM().settings(), policy=manual(turn_ledger_days=30), start_worker=False
    )
    user = uuid.uuid4()
    for turn_id in ("old1", "old2"):
        assert record(backend, user, turn_id)
    backend.flush(user)
    assert record(backend, user, "young")
    backend.flush(user)
    assert record(backend, user, "old-buffered")  # never flushed
    age_ledger(backend, 40, "old1", "old2", "old-buffered")

    backend.processor.maintain()

    assert ledger(backend) == {"young", "old-buffered"}
    assert not record(backend, user, "old-buffered")  # a buffered turn stays de-duplicated
    assert not record(backend, user, "young")  # so does a young processed one
    assert record(backend, user, "old1")  # a forgotten one is recorded again (documented)


def test_without_a_retention_the_ledger_is_kept(make_backend: BackendFactory) -> None:
    backend = make_backend(
        llm=StandInLLM().settings(), policy=manual(turn_ledger_days=None), start_worker=False
    )
    user = uuid.uuid4()
    assert record(backend, user, "t1")
    backend.flush(user)
    age_ledger(backend, 10_000)
    backend.processor.maintain()
    assert ledger(backend) == {"t1"}
    assert not record(backend, user, "t1")


def test_pruning_works_in_small_batches(make_backend: BackendFactory) -> None:
    backend = make_backend(llm=StandInLLM().settings(), policy=manual(), start_worker=False)
    user = uuid.uuid4()
    for n in range(7):
        assert record(backend, user, f"t{n}")
    backend.flush(user)
    age_ledger(backend, 31)
    cutoff = utcnow() - timedelta(days=30)
    assert [backend.store.prune_turns(cutoff, limit=3) for _ in range(4)] == [3, 3, 1, 0]
    assert ledger(backend) == set()
