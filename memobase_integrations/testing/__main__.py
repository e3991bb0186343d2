"""Serve the stand-in LLM from its own process: ``python -m memobase_integrations.testing``.

Why a separate process: a real LLM runs on another machine, so its work never competes with
the app for the GIL. Benchmarks and multi-process tests start this to keep that true offline.
The first line on stdout is the ``/v1`` base URL (``STAND-IN LLM <url>``); the server stops
when stdin closes, so it never outlives the process that started it.
"""

from __future__ import annotations

import argparse
import sys

from . import LABEL, StandInLLM


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m memobase_integrations.testing",
        description=f"{LABEL} Serves it on 127.0.0.1 until stdin closes.",
    )
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait per answer")
    parser.add_argument(
        "--per-token-delay", type=float, default=0.0, help="extra seconds per completion token"
    )
    args = parser.parse_args(argv)
    llm = StandInLLM(delay_s=args.delay, per_token_delay_s=args.per_token_delay)
    with llm.serve() as url:
        print(f"STAND-IN LLM {url}", flush=True)
        print(LABEL, file=sys.stderr, flush=True)
        sys.stdin.read()  # returns at EOF: the parent closed the pipe or exited
    return 0


if __name__ == "__main__":
    sys.exit(main())
