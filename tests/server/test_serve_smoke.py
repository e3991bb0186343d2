"""The smallest round trip: healthcheck, a user, an insert, a flush, a context."""

from __future__ import annotations

from serve_support import Served


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
