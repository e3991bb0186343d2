"""Load: 8 concurrent clients insert for 100 users while the worker processes.

Counts, not times: every insert answered errno 0 (no 5xx, no error envelope), every
inserted blob processed exactly once (the engine's flush log names the blobs of every
committed batch), none left buffered, and the worker did process while the clients were
inserting. Latency is measured by ``benchmarks/serve_bench.py``, not here.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections import Counter
from typing import Any

from support.serving import Store, serving

from memobase_integrations.settings import FlushPolicy

CLIENTS = 8
USERS = 100
TURNS_PER_CLIENT_AND_USER = 2
#: Small batches and a short idle time: the worker processes throughout the run.
BUSY_WORKER = FlushPolicy(
    buffer_token_threshold=120, idle_flush_seconds=0.3, worker_poll_seconds=0.02
)


def chat(marker: str) -> dict[str, Any]:
    text = f"Turn {marker}: I went hiking near the lake today. I live in Bergen."
    return {
        "blob_type": "chat",
        "blob_data": {
            "messages": [
                {"role": "user", "content": text},
                {"role": "assistant", "content": "Sounds lovely!"},
            ]
        },
        "fields": {"marker": marker},
    }


def test_concurrent_inserts_lose_and_duplicate_nothing(store: Store) -> None:
    users = [str(uuid.uuid4()) for _ in range(USERS)]
    inserted: dict[str, str] = {}  # blob id -> marker
    failures: list[str] = []
    lock = threading.Lock()
    with serving(store, policy=BUSY_WORKER) as served:
        with served.client() as c:
            for user in users:
                assert c.post("/api/v1/users", json={"id": user}).json()["errno"] == 0

        def client(k: int) -> None:
            rng = random.Random(k)
            order = [(u, n) for u in users for n in range(TURNS_PER_CLIENT_AND_USER)]
            rng.shuffle(order)
            with served.client() as c:
                for i, (user, n) in enumerate(order):
                    marker = f"mk-{k}-{user[:8]}-{n}"
                    r = c.post(f"/api/v1/blobs/insert/{user}", json=chat(marker))
                    if r.status_code != 200 or r.json()["errno"] != 0:
                        with lock:
                            failures.append(f"insert {marker}: {r.status_code} {r.text[:200]}")
                        continue
                    with lock:
                        inserted[r.json()["data"]["id"]] = marker
                    if i % 10 == 0:  # reads beside the writes
                        r = c.get(f"/api/v1/users/context/{user}")
                        if r.status_code != 200 or r.json()["errno"] != 0:
                            with lock:
                                failures.append(f"context: {r.status_code} {r.text[:200]}")

        threads = [threading.Thread(target=client, args=(k,)) for k in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=1800)
        assert not any(t.is_alive() for t in threads), "clients did not finish"
        backend = served.mb.backend
        flushed_while_inserting = sum(
            len(backend.export_user(uuid.UUID(u))["flushes"])  # type: ignore[attr-defined]
            for u in users
        )
        with served.client() as c:
            for user in users:
                r = c.post(f"/api/v1/users/buffer/{user}/chat", params={"wait_process": "true"})
                if r.status_code != 200 or r.json()["errno"] != 0:
                    failures.append(f"flush {user}: {r.status_code} {r.text[:200]}")
        processed: Counter[str] = Counter()
        for user in users:
            export = backend.export_user(uuid.UUID(user))  # type: ignore[attr-defined]
            for flush in export["flushes"]:
                processed.update(flush["blob_ids"])
        pending = served.mb.status().pending_turns

    assert not failures, failures[:5]
    assert len(inserted) == CLIENTS * USERS * TURNS_PER_CLIENT_AND_USER
    assert len(set(inserted.values())) == len(inserted)  # one blob per marker
    lost = set(inserted) - set(processed)
    twice = [b for b, n in processed.items() if n > 1]
    unknown = set(processed) - set(inserted)
    assert not lost and not twice and not unknown, (len(lost), twice[:3], list(unknown)[:3])
    assert pending == 0
    assert flushed_while_inserting > 0  # the worker processed during the run
