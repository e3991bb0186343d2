"""The durable-queue toolkit both backends share.

The embedded engine (SQL buffer rows, ``engine/store/``) and the remote outbox (a SQLite
file, ``backends/outbox*.py``) are two queues of recorded turns with the same rules, so the
rules live here once:

* :mod:`.backoff`: when a failed item is tried again (one formula, jitter below the cap);
* :mod:`.parking`: when a failed item stops being retried (parked until ``retry_failed``);
* :mod:`.lease`: per-user mutual exclusion whose wait ends in a typed error, never in a
  silent entry without the lease;
* :mod:`.loop`: the background thread (start / wake / stop with a budget) both workers are;
* :mod:`.status`: ``MemoryStatus`` / ``UserStatus`` from per-user counts.

Nothing here does I/O of its own or knows HTTP or SQL: the storage and the wire rules
(which server refusals are permanent) stay with each backend and feed these functions.
"""

from .backoff import backoff_delay, retry_delay
from .lease import LeaseLost, LeaseStore, UserGuards, lease_owner_id, owner_alive
from .loop import BackgroundLoop, StopOutcome
from .parking import Disposition, decide
from .status import memory_status, with_default_error

__all__ = [
    "BackgroundLoop",
    "Disposition",
    "LeaseLost",
    "LeaseStore",
    "StopOutcome",
    "UserGuards",
    "backoff_delay",
    "decide",
    "lease_owner_id",
    "memory_status",
    "owner_alive",
    "retry_delay",
    "with_default_error",
]
