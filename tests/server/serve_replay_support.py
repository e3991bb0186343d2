"""Shared by the two replays of the recordings against ``serve`` (over HTTP, and through
this project's remote backend): the scenarios, the documented differences, the mapping of
recorded server-made ids onto ours, and waiting for the worker."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx
from support.serving import TOKEN, Served

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
        "when the embedding endpoint fails, the context falls back to the search by words, "
        "then the newest events (a read never fails because the LLM is down); the real "
        "server answers errno 503"
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
    "bearer_unknown_project_token": "Bearer unknown-project",
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


class IdMap:
    """Recorded server-made ids -> the ids ``serve`` made in the same place.

    An id first seen in a recorded *request* was chosen by the client (the recorder's fixed
    user ids) and is sent as is; one first seen in a recorded *answer* was made by the
    server, and requests naming it are sent with ours instead.
    """

    def __init__(self) -> None:
        self.ids: dict[str, str] = {}
        self.server_made: set[str] = set()
        self.client_made: set[str] = set()

    def substitute(self, text: str) -> str:
        return UUID_RE.sub(lambda m: self.ids.get(norm_id(m.group(0)), m.group(0)), text)

    def mapped(self, exchange: dict[str, Any]) -> dict[str, Any] | None:
        """The exchange with its request's ids swapped for ours; None when it names a
        server-made id that has no counterpart here."""
        req = exchange["request"]
        found = {norm_id(i) for i in UUID_RE.findall(json.dumps(req))}
        self.client_made |= found - self.server_made
        if any(k not in self.ids for k in found & self.server_made):
            return None
        request = json.loads(self.substitute(json.dumps(untruncate(req))))
        return {**exchange, "request": request}

    def learn(self, recorded: Any, ours: Any) -> None:
        """Pair the ids of a recorded answer with ours, walking both side by side (profile
        rows pair by their slot, other list items by position)."""
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


def send(http: httpx.Client, token: str, exchange: dict[str, Any]) -> httpx.Response:
    """Send a (mapped) recorded request as it was sent, with our token where it was valid."""
    req = exchange["request"]
    headers: dict[str, str] = {}
    if req["auth"] == "valid":
        headers["Authorization"] = f"Bearer {token}"
    elif req["auth"] == "rejected":
        headers["Authorization"] = REJECTED.get(exchange["name"], "Bearer wrong")
    body = req["body"]
    kwargs: dict[str, Any] = {}
    if isinstance(body, str):
        headers["Content-Type"] = req["content_type"] or "application/json"
        kwargs["content"] = body.encode()
    elif body is not None:
        kwargs["json"] = body
    return http.request(
        req["method"], req["path"], params=list(req["query"]), headers=headers, **kwargs
    )


def llm_down(served: Served, label: str, *, after: bool) -> None:
    """Reproduce the outage window of ``14_llm_unavailable`` with the stand-in."""
    if not after and label == LLM_DOWN[0]:
        served.llm.fail_next(kind="http500", times=None)
        served.llm.fail_next(step="embedding", kind="http500", times=None)
    if after and label == LLM_DOWN[1]:
        served.llm.clear_faults()


def settle(served: Served) -> None:
    """Wait until the worker finished what the last request handed it (the recorder waited
    for the real server's background tasks the same way)."""
    backend = served.mb.backend
    assert isinstance(backend, EmbeddedBackend)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        due = [d for d in backend.processor.due_users(drain=False) if d.reason != "retry"]
        if not due and not any(u.processing for u in backend.status().users):
            return
        time.sleep(0.02)
    raise AssertionError("the worker did not settle within 120 s")


def _slot(item: Any) -> tuple[str, str] | None:
    """A profile row's (topic, sub_topic): rows pair by slot, not by position."""
    if isinstance(item, dict) and isinstance(item.get("attributes"), dict):
        attrs = item["attributes"]
        return (str(attrs.get("topic")), str(attrs.get("sub_topic")))
    return None
