"""Command-line interface (placeholder until the demo/CLI issue lands)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["demo"]:
        print("memobase-integrations: the demo arrives with the embedded engine.")
        return
    print("usage: memobase-integrations demo")
    raise SystemExit(2)
