"""This project's remote backend against ``serve``: the remote suite's flows, on a real server.

``tests/remote`` drives ``RemoteBackend`` through every recorded exchange (``driver.plan``
turns each into the client call that sends it) against the recorded answers. Here the same
calls go to ``serve`` instead: every call the recording answered with success must succeed
(its answer parsed into the typed models), every recorded error must raise the same typed
error, and a refusal the client makes locally stays local. Then the facade flows of
``tests/remote`` (record -> flush -> context -> forget, sync and async, users created on
first use) run on ``Memobase.remote`` against ``serve``, and the methods of issue 16.5 map
onto ``serve``'s routes with the embedded engine's answers behind them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from remote import driver
from server.serve_replay_support import DIFFERENCES, SCENARIOS, IdMap, llm_down, scenario, settle
from support.serving import Served, Store, serving

from memobase_integrations import Memobase, errors
from memobase_integrations.backends.remote import RemoteBackend
from memobase_integrations.models import ChatBlob, OpenAICompatibleMessage
from memobase_integrations.settings import FlushPolicy

#: What each client method's result looks like as the route's recorded ``data``.
WRAP: dict[str, Callable[[Any], Any]] = {
    "create_user": lambda r: {"id": str(r)},
    "update_user": lambda r: {"id": str(r)},
    "add_profile": lambda r: {"id": str(r)},
    "list_blobs": lambda r: {"ids": [str(i) for i in r]},
    "buffer_capacity": lambda r: {"ids": [str(i) for i in r]},
    "profile": lambda r: {"profiles": _json(r)},
    "events": lambda r: {"events": _json(r)},
    "search_events": lambda r: {"events": _json(r)},
    "search_events_by_tags": lambda r: {"events": _json(r)},
    "search_gists": lambda r: {"gists": _json(r)},
}


def _json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


def _remote(served: Served, tmp_path: Path, key: str, **options: Any) -> RemoteBackend:
    options.setdefault("auto_create_users", False)  # one request per call, as recorded
    return RemoteBackend(
        served.url,
        key,
        outbox_path=tmp_path / f"outbox-{uuid.uuid4().hex[:6]}.db",
        max_retries=0,
        timeout=120,
        **options,
    )


def run_scenario(store: Store, name: str, tmp_path: Path) -> dict[str, str]:
    """Each sendable exchange through the client; returns the outcome per exchange."""
    outcomes: dict[str, str] = {}
    ids = IdMap()
    with serving(store) as served:
        client = _remote(served, tmp_path, served.token)
        wrong = _remote(served, tmp_path, "sk-proj-nosuchproject-0000")
        try:
            for exchange in scenario(name):
                label = exchange["name"]
                mapped = ids.mapped(exchange)
                assert mapped is not None, f"{label}: a server-made id is not mapped"
                step = driver.plan(mapped)
                llm_down(served, label, after=False)
                if step.kind == "unsendable":
                    outcomes[label] = "unsendable"
                    llm_down(served, label, after=True)
                    continue
                result, exc = None, None
                try:
                    target = wrong if step.rejected_auth else client
                    result = getattr(target, step.method)(*step.args, **step.kwargs)
                except errors.MemobaseError as error:
                    exc = error
                llm_down(served, label, after=True)
                outcomes[label] = _judge(exchange, step, result, exc, ids)
                settle(served)
        finally:
            client.close()
            wrong.close()
    return outcomes


def _judge(
    exchange: dict[str, Any],
    step: driver.Step,
    result: Any,
    exc: BaseException | None,
    ids: IdMap,
) -> str:
    label = exchange["name"]
    if step.local_error is not None:
        assert type(exc) is step.local_error, f"{label}: {exc!r}"
        return "refused locally"
    expected = None if step.tolerated_error else driver.expected_error(exchange)
    if label in DIFFERENCES:
        return "documented difference"
    if expected is None:
        assert exc is None, f"{label}: {exc!r}"
        recorded = exchange["response"]["body"]["data"]
        ids.learn(recorded, WRAP.get(step.method, _json)(result))
        return "ok"
    assert type(exc) is expected, f"{label}: expected {expected.__name__}, got {exc!r}"
    return type(exc).__name__


@pytest.mark.parametrize("name", SCENARIOS)
def test_the_recorded_calls_through_the_remote_backend(
    name: str, sqlite: Store, tmp_path: Path
) -> None:
    outcomes = run_scenario(sqlite, name, tmp_path)
    sendable = [o for o in outcomes.values() if o != "unsendable"]
    assert sendable, "nothing was sent"


def test_bad_inputs_raise_the_recorded_typed_errors(sqlite: Store, tmp_path: Path) -> None:
    """``05_bad_inputs`` through the client: every refusal the client can send raises the
    typed error the real server's answer maps to (``_judge`` compares the types), and none
    turns into a success."""
    outcomes = run_scenario(sqlite, "05_bad_inputs.json", tmp_path)
    recorded = {
        e["name"]: expected.__name__
        for e in scenario("05_bad_inputs.json")
        if outcomes[e["name"]] != "unsendable"
        and (expected := driver.expected_error(e)) is not None
    }
    raised = {k: v for k, v in outcomes.items() if v not in ("ok", "unsendable")}
    assert raised == recorded and len(raised) >= 15


def _facade(served: Served, tmp_path: Path) -> Memobase:
    return Memobase.remote(
        served.url,
        served.token,
        outbox_path=tmp_path / "facade-outbox.db",
        policy=FlushPolicy(idle_flush_seconds=None, worker_poll_seconds=0.02),
    )


def test_record_flush_context_and_forget(served: Served, tmp_path: Path) -> None:
    """``tests/remote/test_facade_remote.py``'s flow with a real engine behind the API."""
    mb = _facade(served, tmp_path)
    try:
        alice = mb.user("alice@example.com")
        receipt = alice.record(
            [
                {"role": "user", "content": "I'm Alice. I live in Rome."},
                {"role": "ai", "content": "Ciao!"},
            ],
            turn_id="run-1",
        )
        assert receipt.turn_id == "run-1" and not receipt.duplicate
        assert "Rome" not in alice.context()  # not processed yet; cached from now on
        (result,) = alice.flush()  # delivers the recorded turn, then processes it
        assert result.event_id is not None and result.add_profiles
        assert "Rome" in alice.context()  # the processed-listener dropped the cache
        assert alice.record([{"role": "user", "content": "x"}], turn_id="run-1").duplicate
        assert alice.status().pending_turns == 0
        assert {p.sub_topic for p in alice.profile()} >= {"name", "city"}
        alice.delete()
        with pytest.raises(errors.NotFoundError):
            mb.backend.get_user(alice.id)  # type: ignore[attr-defined]
    finally:
        mb.close()


def test_async_facade_round_trip(served: Served, tmp_path: Path) -> None:
    mb = _facade(served, tmp_path)

    async def flow() -> str:
        bob = mb.user("bob")
        await bob.arecord([{"role": "user", "content": "I am Bob. I work as a baker."}])
        await bob.aflush()
        text = await bob.acontext()
        await mb.aclose()
        return text

    assert "baker" in asyncio.run(flow())


def test_users_are_created_on_first_use_and_updated_without_nesting(
    served: Served, tmp_path: Path
) -> None:
    """``tests/remote/test_users.py``: an insert for an unknown user creates it (serve answers
    the recorded errno 500 ForeignKeyViolation without the create), get-or-create tolerates a
    concurrent create (errno 500 UniqueViolation), update sends the data itself."""
    backend = _remote(served, tmp_path, served.token, auto_create_users=True)
    strict = _remote(served, tmp_path, served.token)
    try:
        user = uuid.uuid4()
        blob = ChatBlob(messages=[OpenAICompatibleMessage(role="user", content="Hi, I am Ann.")])
        with pytest.raises(errors.ServerError, match="ForeignKeyViolation"):
            strict.insert(user, blob)
        assert backend.insert(user, blob).id
        assert backend.get_user(user).data is None
        with pytest.raises(errors.ServerError, match="UniqueViolation"):
            strict.create_user(user)
        assert backend.get_or_create_user(user).id == user
        assert backend.update_user(user, {"plan": "pro"}) == user
        assert backend.get_user(user).data == {"plan": "pro"}
    finally:
        backend.close()
        strict.close()


def test_the_rest_of_memobases_surface_through_the_facade(served: Served, tmp_path: Path) -> None:
    """Issue 16.5 on ``Memobase.remote``: users with data, the user listing, blob and buffer
    listings, tag search, update_event, usage - each answered by the embedded engine."""
    served.mb.set_profile_config(
        "event_tags:\n  - name: emotion\n    description: how the user feels\n"
    )
    mb = _facade(served, tmp_path)
    try:
        uid = mb.add_user({"name": "Cleo"}, user_id="cleo")
        cleo = mb.user("cleo")
        assert uid == cleo.id and cleo.info().data == {"name": "Cleo"}
        cleo.update_data({"name": "Cleo", "plan": "pro"})
        assert cleo.info().data == {"name": "Cleo", "plan": "pro"}
        listed = mb.get_all_users(search="cleo", order_by="updated_at", limit=5)
        assert listed.count == 1 and listed.users[0].id == uid
        assert listed.users[0].additional_fields == {"name": "Cleo", "plan": "pro"}
        blob = ChatBlob(
            messages=[OpenAICompatibleMessage(role="user", content="I'm so happy today!")]
        )
        blob_id = cleo.insert(blob).id
        assert cleo.list_blobs() == [blob_id]
        assert len(cleo.buffer(status="idle")) == 1
        (result,) = cleo.flush()
        assert cleo.list_blobs() == [] and cleo.buffer(status="idle") == []
        assert result.event_id is not None
        (tagged,) = cleo.search_events_by_tags(tags=["emotion"])
        assert tagged.id == result.event_id
        assert cleo.search_events_by_tags(tag_values={"emotion": "angry"}) == []
        cleo.update_event(tagged.id, {"event_tip": "- User is happy. // info"})
        assert cleo.events()[0].event_data.event_tip == "- User is happy. // info"
        cost = mb.usage().project_token_cost_month
        assert cost is not None and cost > 0
        today = mb.daily_usage(1)[0]
        assert today.total_insert >= 1 and today.total_input_token > 0
        other = cleo.insert(blob).id
        cleo.delete_blob(other)
        assert cleo.list_blobs() == []
    finally:
        mb.close()


def test_the_async_twins_through_the_remote_facade(served: Served, tmp_path: Path) -> None:
    """The async twins of issue 16.5's methods on ``Memobase.remote``, against ``serve``."""
    served.mb.set_profile_config(
        "event_tags:\n  - name: emotion\n    description: how the user feels\n"
    )
    mb = _facade(served, tmp_path)

    async def flow() -> None:
        uid = await mb.aadd_user({"name": "Dan"}, user_id="dan")
        dan = mb.user("dan")
        await dan.aupdate_data({"name": "Dan", "tier": 1})
        assert (await dan.ainfo()).data == {"name": "Dan", "tier": 1}
        assert (await mb.aget_all_users(search=str(uid)[:8])).users[0].id == uid
        blob = ChatBlob(messages=[OpenAICompatibleMessage(role="user", content="I'm happy!")])
        blob_id = (await dan.ainsert(blob)).id
        assert await dan.alist_blobs() == [blob_id] and len(await dan.abuffer()) == 1
        (result,) = await dan.aflush()
        assert result.event_id is not None
        (tagged,) = await dan.asearch_events_by_tags(tags=["emotion"])
        await dan.aupdate_event(tagged.id, {"event_tip": "- happy // info"})
        assert (await dan.aevents())[0].event_data.event_tip == "- happy // info"
        other = (await dan.ainsert(blob)).id
        await dan.adelete_blob(other)
        assert await dan.alist_blobs() == []
        cost = (await mb.ausage()).project_token_cost_month
        assert cost is not None and cost > 0
        assert (await mb.adaily_usage(1))[0].total_insert >= 2
        await mb.aclose()

    asyncio.run(flow())
