"""The physical floor: a bare SQLite insert + commit of the same bytes a turn records."""

from __future__ import annotations

import json
import sqlite3

from benchmarks.conversations import Turn
from benchmarks.systems.base import BenchSystem

__all__ = ["SQLiteFloor", "open_floor_db"]


def open_floor_db(path: str) -> sqlite3.Connection:
    """A file database with the durability settings an embedded store would use
    (WAL journal, ``synchronous=NORMAL``): one row per turn, committed."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS turns (id INTEGER PRIMARY KEY, user_id TEXT, data TEXT)"
    )
    return conn


class SQLiteFloor(BenchSystem):
    """No framework, no memory logic: just the bytes of the turn into SQLite."""

    name = "floor: bare SQLite insert of the turn"
    framework = "none"
    floor = True

    def setup(self) -> None:
        self.conn = open_floor_db(str(self.env.workdir / "floor.db"))

    def begin_session(self, user_id: str, session_index: int) -> None:
        self.user_id = user_id

    def run_turn(self, turn: Turn) -> None:
        data = json.dumps(turn.messages())
        self.conn.execute("BEGIN")
        self.conn.execute("INSERT INTO turns (user_id, data) VALUES (?, ?)", (self.user_id, data))
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()
