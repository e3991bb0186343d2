"""The embedded engine's storage: SQLAlchemy 2 Core on SQLite (default) or PostgreSQL.

:class:`Store` holds all SQL of the embedded engine. It is composed of one class per
concern, each in its own module:

* :mod:`.connection` - the URL, the engine and its per-dialect settings, transactions;
* :mod:`.opening` - creating the tables, migrating an older store, refusing a database that
  is not a store (``create=False``), the statements the hot paths reuse;
* :mod:`.recording` - a turn's blobs, buffer rows and ledger entry (the ``record`` path),
  and pruning that ledger;
* :mod:`.leases` - the buffer's state machine: due users, claims under a lease, renewal,
  commit, failure and release of a flush;
* :mod:`.failed_turns` - failed turns: list, retry, discard;
* :mod:`.memory` - profiles, events, gists, the project config, and the reads of a
  context and a search;
* :mod:`.users` - users and their blob and buffer listings (Memobase's ``/users`` surface);
* :mod:`.reports` - status, export, flush log and usage;
* :mod:`.rows` - the row states, ids and records the methods return; :mod:`.clock` - "now".

Design choices, and why:

* **One code path for both dialects.** Dialect differences are confined to three places: the
  ``INSERT ... ON CONFLICT DO NOTHING`` construct, how a write transaction starts (SQLite:
  ``BEGIN IMMEDIATE``; PostgreSQL: row locks), and the connection pragmas.
* **Every query is scoped by ``user_id`` in SQL.** No method reads another user's rows and
  filters in Python, so a bug in a caller cannot leak one user's memory into another's.
* **Short transactions.** Nothing here waits for an LLM while holding a transaction: a flush
  *claims* its rows (a lease), the pipeline runs outside any transaction, and the results are
  written in one final transaction together with marking the buffer done. A crash anywhere in
  between leaves the rows ``processing`` with a lease that expires, and the next flush for that
  user takes them over: nothing is half-written, nothing is lost.
* **Exclusivity per user.** A claim first locks the user's row (PostgreSQL ``FOR NO KEY
  UPDATE``; on SQLite the whole ``BEGIN IMMEDIATE`` transaction is exclusive), then refuses if
  the user already has rows under a live lease. So one flush per user runs at a time across
  threads and processes, and a user's turns are processed in the order they were recorded.
"""

from __future__ import annotations

from .clock import utcnow
from .connection import DEFAULT_DATABASE_URL, redact_url
from .failed_turns import FailedTurns
from .leases import Leases
from .memory import MemoryRows
from .recording import Recording
from .reports import Reports
from .rows import (
    BUSY,
    DONE,
    FAILED,
    IDLE,
    PROCESSING,
    ConfigState,
    ContextRows,
    DueUser,
    LeaseLostError,
    StoredEmbedded,
    StoredUser,
    new_row_id,
    turn_blob_id,
)
from .users import UserRows

__all__ = [
    "BUSY",
    "DEFAULT_DATABASE_URL",
    "DONE",
    "FAILED",
    "IDLE",
    "PROCESSING",
    "ConfigState",
    "ContextRows",
    "DueUser",
    "LeaseLostError",
    "Store",
    "StoredEmbedded",
    "StoredUser",
    "new_row_id",
    "redact_url",
    "turn_blob_id",
    "utcnow",
]


class Store(Recording, Leases, FailedTurns, MemoryRows, UserRows, Reports):
    """All SQL of the embedded engine. Thread-safe; one instance per backend.

    ``engine_options`` go to :func:`sqlalchemy.create_engine` (e.g. ``connect_args=
    {"options": "-csearch_path=myschema"}`` to put the tables in a PostgreSQL schema).

    ``create=False`` opens an existing store only: no table is created or altered and a
    SQLite file's journal mode is left as it is, and a database without the store's tables
    raises :class:`~memobase_integrations.errors.StoreNotFoundError` (what inspecting tools
    such as the CLI need: pointed at the wrong database, they must not write to it).
    """
