"""The end-to-end conversation replayed from vcrpy cassettes of its LLM exchanges.

By default (``--record-mode`` unset = ``none``) the cassettes under ``cassettes/`` are replayed
and any request they do not hold fails: the network is never used. Re-recording (see
``README.md`` here) talks to a real OpenAI-compatible endpoint when ``OPENAI_API_KEY`` or
``OPENAI_BASE_URL`` is set, otherwise to the stand-in LLM served on a loopback port (that is how
the committed cassettes were made). Authorization headers and cookies are filtered out.

The assertions are what any competent model would also produce for this conversation (a
name, a job and a hobby; then the new job replaces the old one), so a re-recorded cassette
from a real model passes them too.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from embedded.emb_support import MANUAL, turn
from pydantic import SecretStr

from memobase_integrations.backends.embedded import EmbeddedBackend
from memobase_integrations.messages import turn_to_blobs
from memobase_integrations.settings import LLMSettings
from memobase_integrations.testing import StandInLLM
from memobase_integrations.values import ContextOptions, ProfileOptions

CASSETTES = Path(__file__).with_name("cassettes")
#: Request headers that never reach a cassette.
SECRET_HEADERS = [
    "authorization",
    "api-key",
    "x-api-key",
    "openai-organization",
    "openai-project",
    "cookie",
]


def _scrub_response(response: dict[str, Any]) -> dict[str, Any]:
    headers = response.get("headers", {})
    for name in list(headers):
        if name.lower() in ("set-cookie", "openai-organization", "openai-project"):
            del headers[name]
    return response


@pytest.fixture(scope="module")
def vcr_config() -> dict[str, Any]:
    return {
        "filter_headers": SECRET_HEADERS,
        "before_record_response": _scrub_response,
        "match_on": ["method", "path", "memobase_step"],
        "decode_compressed_response": True,
        "allow_playback_repeats": False,
    }


@pytest.fixture(scope="module")
def vcr_cassette_dir() -> str:
    return str(CASSETTES)


@pytest.fixture
def cassette_llm(record_mode: str) -> Iterator[LLMSettings]:
    """Replay: a loopback URL that is never contacted. Recording: a real endpoint from the
    environment, or the stand-in served on loopback. Plain ``httpx`` clients, so vcrpy sees
    every request."""
    client = httpx.Client()
    try:
        if record_mode == "none":
            yield LLMSettings(
                base_url="http://127.0.0.1:9/v1",
                api_key=SecretStr("replay"),
                http_client=client,
                max_retries=0,
            )
        elif os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"):
            yield LLMSettings.from_env(http_client=client, max_retries=0)
        else:
            with StandInLLM().serve() as url:
                yield LLMSettings(
                    base_url=url, api_key=SecretStr("stand-in"), http_client=client, max_retries=0
                )
    finally:
        client.close()


@pytest.mark.vcr
def test_end_to_end_from_cassette(cassette_llm: LLMSettings, tmp_path: Path) -> None:
    backend = EmbeddedBackend(
        f"sqlite:///{tmp_path / 'cassette.db'}", llm=cassette_llm, policy=MANUAL, start_worker=False
    )
    try:
        user = uuid.uuid4()
        backend.record(
            user,
            turn_to_blobs(
                turn(
                    "Hi, my name is Gus and I work as a software engineer.", "Hi Gus!", "2025/01/14"
                )
            ),
            "t1",
        )
        backend.record(
            user, turn_to_blobs(turn("I love hiking on weekends.", "Nice!", "2025/01/14")), "t2"
        )
        (first,) = backend.flush(user)
        profile = {(p.topic, p.sub_topic): p for p in backend.profile(user, ProfileOptions())}
        assert "Gus" in profile[("basic_info", "name")].content
        titles = [p for (topic, _), p in profile.items() if topic == "work"]
        assert any("engineer" in p.content.lower() for p in titles)
        assert any(
            topic == "interest" and "hik" in p.content.lower() for (topic, _), p in profile.items()
        )

        backend.record(
            user,
            turn_to_blobs(turn("I got a new job as a chef at Luigi's.", "Congrats!", "2025/02/01")),
            "t3",
        )
        (second,) = backend.flush(user)
        job_ids = {p.id for p in titles}
        assert job_ids & set(second.update_profiles)  # the job row was updated, not duplicated
        jobs = [p for p in backend.profile(user, ProfileOptions()) if p.id in job_ids]
        assert any("chef" in p.content.lower() for p in jobs)
        assert first.event_id and second.event_id
        assert "Gus" in backend.context(user, ContextOptions())
    finally:
        backend.close(timeout=0)


def test_cassettes_hold_no_credentials() -> None:
    files = sorted(CASSETTES.glob("*.yaml"))
    assert files, "the cassettes are committed with the tests"
    for path in files:
        text = path.read_text()
        data = yaml.safe_load(text)
        assert data["interactions"]
        for interaction in data["interactions"]:
            names = {k.lower() for k in interaction["request"]["headers"]}
            assert not names & set(SECRET_HEADERS), path.name
            assert "x-memobase-step" in names
        assert "Bearer" not in text and "sk-" not in text
