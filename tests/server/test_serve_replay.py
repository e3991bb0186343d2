"""Every recorded exchange with the real Memobase server, replayed against ``serve``.

The recordings (``tests/remote/data``, from ``memobase_server`` 0.0.42) are the contract:
each request is sent again, in order, to a fresh ``serve`` per scenario file, and the answer
must have the recorded HTTP status, the recorded errno and the recorded shape (the same
keys, the same JSON types, the same id and timestamp formats; FastAPI's 422s the same
``(type, loc)`` list; 404/405 the same ``detail``). Values written by an LLM, ids and
timestamps naturally differ, and lists may differ in length where the LLM decided what to
keep (the stand-in LLM is rules, not the scripted stub the recordings were made with).

Ids the server generated in a recording are mapped onto the ids ``serve`` generated in the
same place (walking both answers side by side), so later requests naming them hit the
corresponding object here. The LLM outage of ``14_llm_unavailable`` is reproduced by
making the stand-in fail every call in the same window.

The few exchanges where ``serve`` answers differently on purpose are listed in
:data:`DIFFERENCES` with the reason; ``docs/internals.md`` ("Deliberate differences")
documents each, and the test checks that the list is exact: no difference goes unlisted, no
listed one is stale.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_support import TOKEN, Served, Store, serving

from memobase_integrations.backends.embedded import EmbeddedBackend

DATA = Path(__file__).parents[1] / "remote" / "data"
SCENARIOS = sorted(p.name for p in DATA.glob("[0-9][0-9]_*.json"))

#: Exchanges ``serve`` answers differently on purpose (docs/internals.md).
DIFFERENCES = {
    "set_profile_config_bad_topic_shape": (
        "an invalid profile config is errno 400 with the field named, like every other "
        "invalid config; the real server crashes on this one (errno 500)"
    ),
    "insert_doc_over_1024_tokens_wait_process_true": (
        "doc blobs are stored, never buffered, so an insert cannot trigger processing of "
        "them; the real server stores the blob and then answers errno 400"
    ),
    "context_with_chats_llm_down": (
        "when the embedding endpoint fails, the context falls back to the newest events "
        "(a read never fails because the LLM is down); the real server answers errno 503"
    ),
    "roleplay_proactive_continue": (
        "the experimental roleplay endpoint is not implemented (errno 501): it needs "
        "Chinese-only prompts and a reasoning model the engine does not have"
    ),
    "roleplay_proactive_new_topic": "the same roleplay endpoint (errno 501)",
}

#: The headers of the recorded authentication failures (the copies keep no header values).
REJECTED = {
    "bearer_wrong_token": "Bearer wrong",
    "bearer_sk_unknown_project": "Bearer sk-proj-unknown-abc123",
    "basic_scheme": "Basic c2VjcmV0",
    "bearer_lowercase_scheme": f"bearer {TOKEN}",
    "bearer_without_token": "Bearer",
    "bearer_double_space_before_token": f"Bearer  {TOKEN}",
}

#: ``14_llm_unavailable``: the LLM endpoint is down from the first to the last of these.
LLM_DOWN = ("healthcheck_llm_down", "admin_status_check_llm_down")

UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}"
)
ID_SHAPE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
TIME_SHAPE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def norm_id(text: str) -> str:
    return text.replace("-", "").lower()


def scenario(name: str) -> list[dict[str, Any]]:
    exchanges: list[dict[str, Any]] = json.loads((DATA / name).read_text())["exchanges"]
    return exchanges


def untruncate(value: Any) -> Any:
    """Rebuild strings the recorder shortened (``__truncated_string__``) at full length."""
    if isinstance(value, dict):
        if value.get("__truncated_string__"):
            head, size = value["head"], int(value["chars"])
            return (head * (size // max(len(head), 1) + 1))[:size]
        return {k: untruncate(v) for k, v in value.items()}
    if isinstance(value, list):
        return [untruncate(v) for v in value]
    return value


class Replayer:
    """Sends one scenario's exchanges to a server, mapping recorded ids onto its ids."""

    def __init__(self, served: Served) -> None:
        self.served = served
        self.http = httpx.Client(base_url=served.url, timeout=120)
        self.ids: dict[str, str] = {}  # recorded server-made id (normalised) -> ours
        self.server_made: set[str] = set()
        self.client_made: set[str] = set()

    def close(self) -> None:
        self.http.close()

    # -- ids ----------------------------------------------------------------------------------
    def _substitute(self, text: str) -> str:
        def swap(m: re.Match[str]) -> str:
            key = norm_id(m.group(0))
            return self.ids.get(key, m.group(0))

        return UUID_RE.sub(swap, text)

    def _unmapped(self, request: dict[str, Any]) -> list[str]:
        text = json.dumps([request["path"], request["query"], request["body"]])
        found = {norm_id(i) for i in UUID_RE.findall(text)}
        for key in found - self.server_made:
            self.client_made.add(key)
        return sorted(k for k in found & self.server_made if k not in self.ids)

    def learn(self, recorded: Any, ours: Any) -> None:
        """Pair the ids of a recorded answer with ours, walking both side by side."""
        if isinstance(recorded, str) and ID_SHAPE.match(recorded):
            key = norm_id(recorded)
            if key not in self.client_made:
                self.server_made.add(key)
                if isinstance(ours, str) and ID_SHAPE.match(ours):
                    self.ids.setdefault(key, ours)
        elif isinstance(recorded, dict) and isinstance(ours, dict):
            for k in recorded.keys() & ours.keys():
                self.learn(recorded[k], ours[k])
        elif isinstance(recorded, list):
            ours_list = ours if isinstance(ours, list) else []
            by_slot = {_slot(o): o for o in ours_list if _slot(o) is not None}
            for i, item in enumerate(recorded):
                slot = _slot(item)
                if slot is not None:
                    self.learn(item, by_slot.get(slot))
                else:
                    self.learn(item, ours_list[i] if i < len(ours_list) else None)

    # -- one exchange ---------------------------------------------------------------------------
    def send(self, exchange: dict[str, Any]) -> httpx.Response | None:
        """Send the exchange (ids mapped); None when it names an id we could not map."""
        req = exchange["request"]
        if self._unmapped(req):
            return None
        headers: dict[str, str] = {}
        if req["auth"] == "valid":
            headers["Authorization"] = f"Bearer {self.served.token}"
        elif req["auth"] == "rejected":
            headers["Authorization"] = REJECTED.get(exchange["name"], "Bearer wrong")
        body = untruncate(req["body"])
        kwargs: dict[str, Any] = {}
        if isinstance(body, str):
            headers["Content-Type"] = req["content_type"] or "application/json"
            kwargs["content"] = self._substitute(body).encode()
        elif body is not None:
            kwargs["json"] = json.loads(self._substitute(json.dumps(body)))
        params = [(k, self._substitute(v)) for k, v in req["query"]]
        return self.http.request(
            req["method"],
            self._substitute(req["path"]),
            params=params,
            headers=headers,
            **kwargs,
        )

    def settle(self) -> None:
        """Wait until the worker finished what the last request handed it (the recorder
        waited for the real server's background tasks the same way)."""
        backend = self.served.mb.backend
        assert isinstance(backend, EmbeddedBackend)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            due = [d for d in backend.due_users(drain=False) if d.reason != "retry"]
            if not due and backend.status().users == tuple(
                u for u in backend.status().users if not u.processing
            ):
                return
            time.sleep(0.02)
        raise AssertionError("the worker did not settle within 120 s")


def _slot(item: Any) -> tuple[str, str] | None:
    """A profile row's (topic, sub_topic): rows pair by slot, not by position."""
    if isinstance(item, dict) and isinstance(item.get("attributes"), dict):
        attrs = item["attributes"]
        return (str(attrs.get("topic")), str(attrs.get("sub_topic")))
    return None


def shape_problems(recorded: Any, ours: Any, where: str = "data", top: bool = True) -> list[str]:
    """How ``ours`` differs from ``recorded`` in shape (see the module doc)."""
    if recorded is None or ours is None:
        if top and (recorded is None) != (ours is None):
            return [f"{where}: {type(ours).__name__} where the server answered {recorded!r:.60}"]
        return []
    if isinstance(recorded, dict):
        if not isinstance(ours, dict):
            return [f"{where}: {type(ours).__name__} instead of an object"]
        if where.endswith(".attributes"):
            missing = {"topic", "sub_topic"} - ours.keys()
            return [f"{where}: missing {sorted(missing)}"] if missing else []
        if recorded.keys() != ours.keys():
            return [f"{where}: keys {sorted(ours)} != {sorted(recorded)}"]
        problems: list[str] = []
        for k in recorded:
            problems += shape_problems(recorded[k], ours[k], f"{where}.{k}", top=False)
        return problems
    if isinstance(recorded, list):
        if not isinstance(ours, list):
            return [f"{where}: {type(ours).__name__} instead of a list"]
        if recorded and ours:
            return [
                p for item in ours for p in shape_problems(recorded[0], item, f"{where}[]", False)
            ]
        return []
    if isinstance(recorded, bool) or isinstance(ours, bool):
        return [] if type(recorded) is type(ours) else [f"{where}: {ours!r} is not a bool"]
    if isinstance(recorded, int | float):
        ok = isinstance(ours, int | float) and (
            isinstance(recorded, float) or isinstance(ours, int)
        )
        return [] if ok else [f"{where}: {ours!r} is not like {recorded!r}"]
    if isinstance(recorded, str):
        if not isinstance(ours, str):
            return [f"{where}: {ours!r} is not a string"]
        for pattern in (ID_SHAPE, TIME_SHAPE):
            if pattern.match(recorded) and not pattern.match(ours):
                return [f"{where}: {ours!r} is not formatted like {recorded!r}"]
    return []


def differences(recorded: dict[str, Any], response: httpx.Response) -> list[str]:
    """Everything that does not match the recording, as readable lines."""
    if response.status_code != recorded["status"]:
        return [f"HTTP {response.status_code} != {recorded['status']}: {response.text[:300]}"]
    expected = recorded["body"]
    got = response.json()
    if isinstance(expected, dict) and "__summarized__" in expected:  # the OpenAPI document
        routes = {(p, m.lower()) for p, methods in expected["paths"].items() for m in methods}
        ours = {(p, m) for p, item in got["paths"].items() for m in item}
        return [f"route {m.upper()} {p} is missing" for p, m in sorted(routes - ours)]
    if isinstance(expected, dict) and "errno" in expected:
        if not isinstance(got, dict) or set(got) != {"data", "errno", "errmsg"}:
            return [f"not an envelope: {response.text[:300]}"]
        if got["errno"] != expected["errno"]:
            return [f"errno {got['errno']} != {expected['errno']}: {got['errmsg'][:300]}"]
        if expected["errno"] != 0:
            return [] if got["errmsg"] else ["an error without errmsg"]
        return shape_problems(expected["data"], got["data"])
    if isinstance(expected.get("detail"), list):
        want = [(d["type"], d["loc"]) for d in expected["detail"]]
        have = [(d["type"], d["loc"]) for d in got.get("detail", [])]
        return [] if want == have else [f"422 detail {have} != {want}"]
    if response.status_code >= 500:  # a failed health check: the reason is ours to word
        return [] if isinstance(got.get("detail"), str) else [f"no detail: {got}"]
    return [] if got == expected else [f"{got} != {expected}"]


def replay(store: Store, name: str) -> tuple[dict[str, list[str]], list[str], int]:
    """Replay one scenario; returns the mismatches by exchange, the skipped ones and how
    many were compared."""
    mismatches: dict[str, list[str]] = {}
    skipped: list[str] = []
    compared = 0
    with serving(store) as served:
        replayer = Replayer(served)
        try:
            for exchange in scenario(name):
                label = exchange["name"]
                if label == LLM_DOWN[0]:
                    served.llm.fail_next(kind="http500", times=None)
                    served.llm.fail_next(step="embedding", kind="http500", times=None)
                response = replayer.send(exchange)
                if label == LLM_DOWN[1]:
                    served.llm.clear_faults()
                if response is None:
                    skipped.append(label)
                    continue
                compared += 1
                problems = differences(exchange["response"], response)
                if problems:
                    mismatches[label] = problems
                if response.headers.get("content-type", "").startswith("application/json"):
                    body = exchange["response"]["body"]
                    if isinstance(body, dict) and "data" in body:
                        replayer.learn(body["data"], response.json().get("data"))
                replayer.settle()
        finally:
            replayer.close()
    return mismatches, skipped, compared


@pytest.mark.parametrize("name", SCENARIOS)
def test_recorded_exchanges_get_the_recorded_status_errno_and_shape(
    name: str, sqlite: Store
) -> None:
    mismatches, skipped, compared = replay(sqlite, name)
    unexpected = {k: v for k, v in mismatches.items() if k not in DIFFERENCES}
    assert not unexpected, json.dumps(unexpected, indent=1)
    # Each listed difference of this scenario really differs: a stale entry would hide a
    # regression of that exchange.
    listed = {e["name"] for e in scenario(name)} & DIFFERENCES.keys()
    assert mismatches.keys() == listed
    # Ids that could not be mapped would silently shrink the replay: none may be left out.
    assert not skipped, f"not replayed (an id the server made is not mapped): {skipped}"
    assert compared == len(scenario(name))
