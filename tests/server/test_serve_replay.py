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
from typing import Any

import httpx
import pytest
from server.serve_replay_support import (
    DIFFERENCES,
    ID_SHAPE,
    SCENARIOS,
    TIME_SHAPE,
    IdMap,
    llm_down,
    scenario,
    send,
    settle,
)
from support.serving import Store, serving


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
    ids = IdMap()
    with serving(store) as served, httpx.Client(base_url=served.url, timeout=120) as http:
        for exchange in scenario(name):
            label = exchange["name"]
            mapped = ids.mapped(exchange)
            if mapped is None:
                skipped.append(label)
                continue
            llm_down(served, label, after=False)
            response = send(http, served.token, mapped)
            llm_down(served, label, after=True)
            compared += 1
            problems = differences(exchange["response"], response)
            if problems:
                mismatches[label] = problems
            body = exchange["response"]["body"]
            if isinstance(body, dict) and "data" in body and not problems:
                ids.learn(body["data"], response.json().get("data"))
            settle(served)
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
