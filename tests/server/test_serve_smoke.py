"""The smallest round trip: healthcheck, a user, an insert, a flush, a context."""

from __future__ import annotations

import threading
import time

import httpx
from support.serving import Served, Store, serving

from memobase_integrations.testing import StandInLLM


def test_round_trip(served: Served) -> None:
    uid = "5e1a3f4c-6d7b-4c8e-af90-b1c2d3e4f561"
    with served.client() as c:
        assert c.get("/api/v1/healthcheck").json() == {"data": None, "errno": 0, "errmsg": ""}
        assert c.post("/api/v1/users", json={"id": uid}).json()["errno"] == 0
        chat = {"messages": [{"role": "user", "content": "I live in Lisbon. I work as a nurse."}]}
        r = c.post(f"/api/v1/blobs/insert/{uid}", json={"blob_type": "chat", "blob_data": chat})
        assert r.json()["errno"] == 0, r.text
        r = c.post(f"/api/v1/users/buffer/{uid}/chat", params={"wait_process": "true"})
        assert r.json()["data"][0]["add_profiles"], r.text
        context = c.get(f"/api/v1/users/context/{uid}").json()["data"]["context"]
        assert "Lisbon" in context and "nurse" in context


def test_a_slow_request_never_blocks_the_others(sqlite: Store) -> None:
    """Processing in a request (1 s per LLM call) runs in a thread: while it is in flight,
    other requests are answered (the event loop is free). No time is asserted: the check is
    the order - the other answers arrive while the slow request is still running."""
    with serving(sqlite, llm=StandInLLM(delay_s=1.0)) as served, served.client() as c:
        uid = "5e1a3f4c-6d7b-4c8e-af90-b1c2d3e4f562"
        c.post("/api/v1/users", json={"id": uid})
        chat = {"messages": [{"role": "user", "content": "I live in Lisbon."}]}
        c.post(f"/api/v1/blobs/insert/{uid}", json={"blob_type": "chat", "blob_data": chat})
        answers: list[httpx.Response] = []
        slow = threading.Thread(
            target=lambda: answers.append(
                c.post(f"/api/v1/users/buffer/{uid}/chat", params={"wait_process": "true"})
            )
        )
        slow.start()
        with served.client() as other:
            deadline = time.monotonic() + 60
            while not other.get(f"/api/v1/users/buffer/capacity/{uid}/chat").json()["data"][
                "ids"
            ]:  # the flush claimed the turn: it is now waiting for the LLM
                assert time.monotonic() < deadline
            for _ in range(5):
                assert other.get("/api/v1/healthcheck").json()["errno"] == 0
                assert other.get(f"/api/v1/users/{uid}").json()["errno"] == 0
            assert slow.is_alive()  # all answered while the slow one was in flight
        slow.join(timeout=120)
        assert answers[0].json()["data"][0]["event_id"]
