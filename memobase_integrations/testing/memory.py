"""``InMemoryBackend``: a complete, deterministic Backend for tests (yours and ours).

It is the embedded engine itself - the same store code, pipeline, answer checks, context
packing and search - on a private in-memory SQLite database, processing with the offline
stand-in LLM (:class:`~memobase_integrations.testing.StandInLLM`: rules, not a model) and
with no background worker. Nothing touches the disk or the network.

Why the real engine rather than dictionaries: a hand-written double drifts from the thing
it stands for (the two fakes this replaced implemented 20 and 45 of the protocol's methods,
and a context format of their own). This one implements every method because it *is* the
implementation, and ``tests/contract/`` runs the same behaviour checks over it, the embedded
engine on SQLite and PostgreSQL, and a remote backend against a loopback server.

Deterministic rules (what differs from ``EmbeddedBackend``):

* ``record()`` only buffers. Turns are processed when you ask: ``flush()`` /
  ``aflush()`` (with ``wait=False`` too: there is no worker, so it processes inline before
  returning ``[]``), ``insert(..., wait_process=...)`` over the policy's threshold, and
  ``close()`` (which drains unless the policy says ``flush_on_close=False``).
* Processing runs the real pipeline against the stand-in, so the facts found are the
  stand-in's (``"My name is Ann"`` -> ``basic_info/name``; see the ``testing`` package
  docstring for the recognised statements). Faults come from the stand-in:
  ``backend.stand_in.fail_next("entry_summary", "http500", times=None)`` makes the next
  flush raise :class:`~memobase_integrations.errors.LLMError`; the turns stay buffered,
  ``failed``, listed by ``failures()``, until ``retry_failed()`` (then the next flush) or
  ``discard_failed()``. A failed turn is retried by the next flush without waiting out its
  backoff; ``FlushPolicy.max_attempts`` parks it as in production.
* Embeddings are off unless ``embeddings=True`` (search is by words either way).
"""

from __future__ import annotations

import logging
import uuid

from ..backends.embedded import EmbeddedBackend
from ..engine.config import ProfileConfig
from ..errors import MemobaseError
from ..models import BlobType
from ..settings import FlushPolicy
from . import StandInLLM

__all__ = ["TEST_POLICY", "InMemoryBackend"]

logger = logging.getLogger("memobase_integrations.testing")

#: No threshold, idle or close-time processing: only what the test asks for. (Retries
#: of a failed turn wait for the next explicit flush.)
TEST_POLICY = FlushPolicy(
    buffer_token_threshold=10**9,
    idle_flush_seconds=None,
    flush_on_close=False,
)


class InMemoryBackend(EmbeddedBackend):
    """The embedded engine in memory, with the stand-in LLM and no worker (see the module
    doc for its rules). ``stand_in`` is the :class:`StandInLLM` it processes with (one is
    made when not given; keep a reference to inject faults or count calls)."""

    kind = "memory"

    def __init__(
        self,
        *,
        stand_in: StandInLLM | None = None,
        embeddings: bool = False,
        profile_config: ProfileConfig | str | None = None,
        policy: FlushPolicy | None = None,
        keep_processed_blobs: bool = False,
    ) -> None:
        self.stand_in = stand_in if stand_in is not None else StandInLLM()
        super().__init__(
            "sqlite://",
            llm=self.stand_in.settings(enable_embeddings=embeddings),
            profile_config=profile_config,
            policy=policy if policy is not None else TEST_POLICY,
            start_worker=False,
            keep_processed_blobs=keep_processed_blobs,
        )

    def __repr__(self) -> str:
        return f"InMemoryBackend(llm={self.stand_in!r})"

    def _request(self, user_id: uuid.UUID, blob_type: BlobType) -> None:
        """Where the engine would hand work to its worker: process inline instead, so a
        test never waits for (or races with) a background thread."""
        try:
            self.processor.flush_all(user_id, blob_type)
        except MemobaseError as exc:
            logger.warning("memobase: flush of %s failed: %s", user_id, exc)
