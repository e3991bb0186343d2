"""Write ``store_v1.db``: a store made by the release before search (schema version 1).

How the committed file was made (from the repository root)::

    git worktree add --detach /tmp/mb-v1 d9a60eb
    PYTHONPATH=/tmp/mb-v1 python tests/embedded/data/make_store_v1.py \\
        tests/embedded/data/store_v1.db
    git worktree remove /tmp/mb-v1

Run it with the old code on ``PYTHONPATH`` (it refuses otherwise). Two users, processed by
that release's pipeline on its stand-in LLM: ``alice`` without embeddings (five events, the
oldest about the Dolomites) and ``bob`` with them (two events that carry 64-dimension vectors). A
``schema_v1.py`` beside it is that release's ``engine/schema.py``, for building the same
store on PostgreSQL.
"""

from __future__ import annotations

import sys
from pathlib import Path

from memobase_integrations.backends.embedded import EmbeddedBackend
from memobase_integrations.engine import schema
from memobase_integrations.ids import to_user_uuid
from memobase_integrations.messages import Message, turn_to_blobs
from memobase_integrations.settings import FlushPolicy
from memobase_integrations.testing import StandInLLM

ALICE = [
    "I love hiking in the Dolomites.",
    "I love hiking near Berlin.",
    "I work as a baker.",
    "I'm going to Japan next week.",
    "I love jazz music.",
]
#: Small vectors keep the file small; the tests search bob's memory with the same size.
EMBEDDING_DIM = 64
BOB = ["I love the cello.", "My dog is named Biscuit."]


def main(path: Path) -> None:
    if schema.SCHEMA_VERSION != 1:
        raise SystemExit("run this with the schema-version-1 code on PYTHONPATH (see the doc)")
    path.unlink(missing_ok=True)
    policy = FlushPolicy(
        buffer_token_threshold=10**9, idle_flush_seconds=None, flush_on_close=False
    )
    for user, sentences, embeddings in (("alice", ALICE, False), ("bob", BOB, True)):
        backend = EmbeddedBackend(
            f"sqlite:///{path}",
            llm=StandInLLM().settings(enable_embeddings=embeddings, embedding_dim=EMBEDDING_DIM),
            policy=policy,
            start_worker=False,
        )
        uid = to_user_uuid(user)
        for i, sentence in enumerate(sentences):
            turn = [Message.of("user", sentence), Message.of("assistant", "Nice!")]
            backend.record(uid, turn_to_blobs(turn), f"{user}-{i}")
            backend.flush(uid)
        backend.close()
    for suffix in ("-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
