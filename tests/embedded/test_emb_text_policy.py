"""Text no store can keep, end to end through the embedded engine (issue 12, item 2).

On PostgreSQL a turn carrying U+0000 or a lone surrogate failed to store (or, had it been
stored, every flush of it), holding back the user's later turns. The policy: in message text
such characters become U+FFFD at ``record()``; in ids they are refused. Everything else -
emoji sequences, right-to-left scripts, combining marks - is kept byte for byte. Each case
is recorded, processed by the real pipeline (stand-in LLM), and read back from the store.
"""

from __future__ import annotations

import logging
import uuid

import pytest
from embedded.emb_support import MANUAL, BackendFactory

from memobase_integrations import Memobase
from memobase_integrations.errors import InvalidMessageError, InvalidUserIdError
from memobase_integrations.testing import StandInLLM

#: (what the user typed, what must come back); the alias carries the same characters.
CASES = [
    ("I live in Lis\x00bon.", "I live in Lis\ufffdbon."),
    ("I live in Lisbon \ud83d and more.", "I live in Lisbon \ufffd and more."),
    ("I love hiking 🏔️👩‍👩‍👧👍🏽.", "I love hiking 🏔️👩‍👩‍👧👍🏽."),
    ("I live in תל אביב, مرحبا.", "I live in תל אביב, مرحبا."),
    ("I live in Mala\u0301ga, Zu\u0308rich.", "I live in Mala\u0301ga, Zu\u0308rich."),
]


IDS = ["nul", "surrogate", "emoji", "rtl", "marks"]


@pytest.mark.parametrize(("typed", "kept"), CASES, ids=IDS)
def test_text_is_recorded_processed_and_read_back(
    make_backend: BackendFactory, typed: str, kept: str, caplog: pytest.LogCaptureFixture
) -> None:
    llm = StandInLLM()
    backend = make_backend(llm=llm.settings(), policy=MANUAL, keep_processed_blobs=True)
    mb = Memobase(backend)
    user = mb.user(f"text-{uuid.uuid4()}")
    alias = "Ana\x00\udc80" if "\x00" in typed or "\ud83d" in typed else "Ana 👩‍🔬"
    caplog.set_level(logging.DEBUG, logger="memobase_integrations")
    receipt = user.record(
        [
            {"role": "user", "content": typed, "name": alias},
            {"role": "assistant", "content": "Noted."},
        ],
        turn_id="t1",
    )
    changed = typed != kept
    assert ("U+FFFD" in caplog.text) == changed
    assert typed not in caplog.text or not changed  # counted, never the text itself

    # a later turn of the same user is not held back
    user.record([{"role": "user", "content": "I work as a nurse."}], turn_id="t2")
    user.flush()
    status = user.status()
    assert status.pending_turns == 0 and status.failed == 0

    stored = user.get_blob(receipt.blob_ids[0]).to_blob()
    first = stored.messages[0]  # type: ignore[union-attr]
    assert first.content == kept
    assert first.alias == ("Ana\ufffd\ufffd" if changed else "Ana 👩‍🔬")
    assert first.content.encode("utf-8").decode("utf-8") == kept  # valid UTF-8 throughout

    profile = {(p.topic, p.sub_topic): p.content for p in user.profile()}
    assert profile[("work", "title")].startswith("nurse")
    # the pipeline saw the text exactly as stored
    assert any(kept in call.user for call in llm.history if call.step == "entry_summary")
    text = "".join(profile.values())
    assert "\x00" not in text and not any("\ud800" <= c <= "\udfff" for c in text)
    assert user.context()  # the packed context reads back too
    export = user.export()
    assert export["profiles"] and "\x00" not in str(export)


@pytest.mark.parametrize(
    ("user_id", "turn_id", "error"),
    [
        ("ann\x00", "t1", InvalidUserIdError),
        ("ann\udc80", "t1", InvalidUserIdError),
        ("ann", "t\x00", InvalidMessageError),
        ("ann", "t\ud800", InvalidMessageError),
    ],
)
def test_ids_that_cannot_round_trip_are_refused_and_nothing_is_written(
    make_backend: BackendFactory, user_id: str, turn_id: str, error: type[Exception]
) -> None:
    backend = make_backend(llm=StandInLLM().settings(), policy=MANUAL)
    mb = Memobase(backend)
    with pytest.raises(error, match="refused rather than altered"):
        mb.user(user_id).record([{"role": "user", "content": "hi"}], turn_id=turn_id)
    assert backend.status().pending_turns == 0
