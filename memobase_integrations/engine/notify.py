"""Wake-ups on PostgreSQL: a recorded turn NOTIFYs, the workers LISTEN.

Why a trigger: the NOTIFY then goes out in the very transaction that buffers the turn (and
only if it commits), from every writer - ``record``, ``insert``, any version of this
package, any process - with no extra statement on the recording hot path. PostgreSQL folds
the NOTIFYs of one transaction into one and delivers them at commit. The trigger fires per
statement on INSERT only: the worker's own claims and results (UPDATE/DELETE) never wake
anyone.

The worker's listener installs the trigger if it is missing (idempotent, serialized by an
advisory lock, so several workers starting at once do not race); a role that may not
create it just gets no wake-ups and the worker falls back to its safety-net poll.
"""

from __future__ import annotations

import logging
import select
import threading
import uuid
from collections.abc import Callable
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Engine

__all__ = ["CHANNEL", "TurnListener", "install_trigger", "wait_for_notifies"]

logger = logging.getLogger(__name__)

#: The NOTIFY channel (per database; several schemas share it, which costs a spare wake-up).
CHANNEL: Final = "memobase_turns"
_TRIGGER: Final = "mb_buffer_notify"
_FUNCTION: Final = "mb_notify_turn"
#: Longest wait for a notification before the listener looks at its stop flag. ``stop``
#: wakes it at once with a NOTIFY of its own, so this only bounds a stop while the database
#: is unreachable.
_LISTEN_TICK_SECONDS: Final = 10.0
#: Wait before reconnecting after the listening connection failed.
_RECONNECT_SECONDS: Final = 5.0


def install_trigger(engine: Engine) -> bool:
    """Create the NOTIFY trigger on the buffer table unless it exists; True when it is
    there afterwards. PostgreSQL only."""
    table = sa.text("SELECT to_regclass('mb_buffer')::oid")
    exists = sa.text("SELECT 1 FROM pg_trigger WHERE tgrelid = :oid AND tgname = :name")
    with engine.begin() as conn:
        oid = conn.execute(table).scalar()
        if oid is None:
            return False
        if conn.execute(exists, {"oid": oid, "name": _TRIGGER}).first() is not None:
            return True
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": _TRIGGER})
        if conn.execute(exists, {"oid": oid, "name": _TRIGGER}).first() is not None:
            return True
        schema = conn.execute(
            sa.text(
                "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.oid = :oid"
            ),
            {"oid": oid},
        ).scalar_one()
        quoted = conn.dialect.identifier_preparer.quote_identifier(schema)
        conn.execute(
            sa.text(
                f"CREATE OR REPLACE FUNCTION {quoted}.{_FUNCTION}() RETURNS trigger "
                f"LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('{CHANNEL}', ''); "
                "RETURN NULL; END $$"
            )
        )
        conn.execute(
            sa.text(
                f"CREATE TRIGGER {_TRIGGER} AFTER INSERT ON {quoted}.mb_buffer "
                f"FOR EACH STATEMENT EXECUTE FUNCTION {quoted}.{_FUNCTION}()"
            )
        )
    return True


class TurnListener:
    """A daemon thread that LISTENs on :data:`CHANNEL` and calls ``on_turn`` per wake-up.

    ``start`` returns False (and starts nothing) when the store is not PostgreSQL through
    psycopg 3 or the trigger cannot be installed: the caller then relies on polling.
    """

    def __init__(
        self, engine: Engine, on_turn: Callable[[], None], name: str = "memobase-listen"
    ) -> None:
        self._engine = engine
        self._on_turn = on_turn
        self._name = name
        self._stop = threading.Event()
        self._token = f"stop:{uuid.uuid4().hex}"
        self._thread: threading.Thread | None = None
        #: Set while a connection LISTENs (tests wait for it before recording).
        self.listening = threading.Event()

    def start(self) -> bool:
        if self._engine.dialect.name != "postgresql" or self._engine.dialect.driver != "psycopg":
            return False
        try:
            if not install_trigger(self._engine):
                return False
        except sa.exc.SQLAlchemyError as exc:
            logger.info(
                "memobase: no wake-ups from PostgreSQL (could not install the NOTIFY trigger: "
                "%s); the worker polls instead",
                type(exc).__name__,
            )
            return False
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()
        return True

    def stop(self) -> None:
        """Stop listening: a NOTIFY only this listener takes for "stop" ends its wait now."""
        self._stop.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread() or not thread.is_alive():
            return
        try:
            with self._engine.begin() as conn:
                conn.execute(sa.text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": self._token})
        except sa.exc.SQLAlchemyError:
            logger.debug("memobase: could not wake the LISTEN thread to stop it", exc_info=True)
        thread.join(_LISTEN_TICK_SECONDS + 1.0)

    def _connect(self) -> Any:
        raw = self._engine.raw_connection()
        conn = raw.driver_connection
        raw.detach()  # ours for good: it must stay LISTENing, never go back to the pool
        assert conn is not None
        conn.rollback()
        conn.autocommit = True
        conn.execute(f"LISTEN {CHANNEL}")
        return conn

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn = self._connect()
            except Exception as exc:
                logger.debug("memobase: LISTEN connection failed: %s", type(exc).__name__)
                self._stop.wait(_RECONNECT_SECONDS)
                continue
            self.listening.set()
            try:
                self._on_turn()  # whatever was recorded while not listening
                while not self._stop.is_set():
                    payloads = wait_for_notifies(conn, _LISTEN_TICK_SECONDS)
                    if any(p != self._token for p in payloads):
                        self._on_turn()
            except Exception as exc:
                if not self._stop.is_set():
                    logger.debug("memobase: LISTEN connection lost: %s", type(exc).__name__)
                    self._stop.wait(_RECONNECT_SECONDS)
            finally:
                self.listening.clear()
                try:
                    conn.close()
                except Exception:
                    logger.debug("memobase: closing the LISTEN connection failed", exc_info=True)


def wait_for_notifies(conn: Any, timeout: float) -> list[str]:
    """The payloads of the notifications that reach the psycopg connection ``conn`` within
    ``timeout`` seconds (none when it passes quietly).

    One ``select`` on the socket, not psycopg's ``notifies(timeout=...)``: that wakes every
    0.1 s while it waits (to notice signals), ten wake-ups a second that were most of an
    idle worker's CPU. A connection the server closed reads as readable, and then
    ``consume_input`` raises, which the listener's reconnect loop handles.
    """
    ready, _, _ = select.select([conn.fileno()], [], [], timeout)
    if not ready:
        return []
    pgconn = conn.pgconn
    pgconn.consume_input()
    payloads: list[str] = []
    while (note := pgconn.notifies()) is not None:
        payloads.append(note.extra.decode())
    return payloads
