"""Exact token counts for buffer rows recorded while the tokenizer was still loading.

``record()`` must not wait for the o200k encoder (about a second to build), so until it is
ready a row is written with an upper bound (the text's UTF-8 length: every token covers at
least one byte) and handed here; a background thread writes the exact counts once the
encoder is there. An upper bound can make a buffer due early, never late.
"""

from __future__ import annotations

import logging
import threading
import uuid

from ..engine.store import Store
from ..tokens import count_tokens

__all__ = ["TokenCountCorrector"]

logger = logging.getLogger(__name__)


class TokenCountCorrector:
    """Rows waiting for their exact token count, and the one thread that writes them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        #: ``(blob id, rendered text)`` of rows whose stored size is an upper bound.
        self.pending: list[tuple[uuid.UUID, str]] = []
        #: True while a thread is correcting them.
        self.correcting = False

    def queue(self, estimates: list[tuple[uuid.UUID, str]]) -> None:
        """Hand rows recorded with an upper-bound token size (the tokenizer was loading) to
        a background thread that writes their exact counts once it can."""
        with self._lock:
            self.pending.extend(estimates)
            if self.correcting:
                return
            self.correcting = True
        threading.Thread(target=self._correct, name="memobase-token-counts", daemon=True).start()

    def _correct(self) -> None:
        """Exact token counts for the queued rows, off the request path: waits for the
        tokenizer, then one UPDATE per batch, until no row is left. Until then a bound can
        only make a buffer due early, never late; a row already flushed is simply not there
        any more (the UPDATE changes nothing)."""
        while True:
            with self._lock:
                batch, self.pending = self.pending, []
                if not batch:
                    self.correcting = False
                    return
            try:
                sizes = {blob_id: count_tokens(text) for blob_id, text in batch}
                self.store.set_token_sizes(sizes)
            except Exception:
                logger.warning(
                    "memobase: could not write exact token counts for %d buffered blobs; "
                    "their upper bounds stay (a flush may come early)",
                    len(batch),
                    exc_info=True,
                )
