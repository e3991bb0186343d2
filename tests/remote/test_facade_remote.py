"""The facade on the remote backend: record -> flush -> context cache -> delete, sync and async."""

from __future__ import annotations

import asyncio
from pathlib import Path

from memobase_integrations import Memobase
from memobase_integrations.backends.base import Backend
from memobase_integrations.backends.remote import RemoteBackend
from memobase_integrations.ids import to_user_uuid
from memobase_integrations.settings import FlushPolicy

from .fake_server import FakeMemobase


def _memobase(fake: FakeMemobase, tmp_path: Path) -> Memobase:
    transport = fake.transport()
    return Memobase.remote(
        "http://memobase.test",
        "sk-proj-facade-test",
        transport=transport,
        async_transport=transport,
        outbox_path=tmp_path / "outbox.db",
        policy=FlushPolicy(idle_flush_seconds=None, worker_poll_seconds=0.01),
    )


def test_remote_backend_satisfies_the_backend_protocol(tmp_path: Path) -> None:
    backend: Backend = RemoteBackend("http://memobase.test", "k", outbox_path=tmp_path / "o.db")
    assert isinstance(backend, Backend) and backend.kind == "remote"
    backend.close()


def test_record_flush_context_and_forget(tmp_path: Path) -> None:
    fake = FakeMemobase()
    mb = _memobase(fake, tmp_path)
    alice = mb.user("alice@example.com")
    receipt = alice.record(
        [
            {"role": "user", "content": "I'm Alice, I live in Rome."},
            {"role": "ai", "content": "Ciao!"},
        ],
        turn_id="run-1",
    )
    assert receipt.turn_id == "run-1"
    assert alice.context() == "# Memory\n0 processed blobs\n"  # cached from now on
    assert len(alice.flush()) == 1  # delivers the recorded turn, then processes it
    # the processed-listener dropped the cached context, so the new one is fetched
    assert alice.context() == "# Memory\n1 processed blobs\n"
    assert fake.processed_keys() == [(str(to_user_uuid("alice@example.com")), "run-1", 0)]
    assert alice.status().pending_turns == 0
    alice.delete()
    assert ("DELETE", f"/api/v1/users/{alice.id}") in fake.requests
    mb.close()


def test_async_facade_round_trip(tmp_path: Path) -> None:
    fake = FakeMemobase()
    mb = _memobase(fake, tmp_path)

    async def flow() -> str:
        bob = mb.user("bob")
        await bob.arecord([{"role": "user", "content": "I am Bob."}], turn_id="b1")
        await bob.aflush()
        text = await bob.acontext()
        await mb.aclose()
        return text

    assert asyncio.run(flow()) == "# Memory\n1 processed blobs\n"
