"""``python -m benchmarks.llm_server``: the benchmark LLM (:class:`BenchLLM`) served over HTTP.

Started by :class:`benchmarks.llm.ServedBenchLLM`; prints ``BENCH LLM <root URL>`` and serves
on 127.0.0.1 until its stdin closes.

* ``POST /L/<label>/v1/...``: an OpenAI-compatible request, answered by the stand-in and counted
  under ``<label>`` (URL-quoted), after the latency model's sleep;
* ``GET /counts/<label>``: that label's :class:`LLMCounts` as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

import httpx

from benchmarks.llm import BenchLLM, LatencyModel
from memobase_integrations.testing import StandInLLM


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver's default listen backlog is 5: with several worker processes each holding
    # dozens of flushes in flight, connects beyond it were refused ("LLM endpoint could not be
    # reached") and the capacity section measured the stand-in server, not the workers.
    request_queue_size = 1024
    llm: BenchLLM


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    # Headers and body go out in separate writes: without TCP_NODELAY, Nagle plus the
    # client's delayed ACK stall every keep-alive request by ~40 ms.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _reply(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
        try:
            self.send_response(status)
            self.send_header("content-type", content_type)
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            # The client went away mid-call: a capacity worker stopped at the window's end.
            self.close_connection = True

    def do_GET(self) -> None:
        parts = self.path.split("/", 3)  # "", "counts", label
        if len(parts) == 3 and parts[1] == "counts":
            counts = self.server.llm.counts(unquote(parts[2]))
            # Not dataclasses.asdict: it would rebuild the Counter from (key, value) pairs.
            data = {f.name: getattr(counts, f.name) for f in dataclasses.fields(counts)}
            data["by_kind"] = dict(counts.by_kind)
            self._reply(200, json.dumps(data).encode())
            return
        self._reply(404, b'{"error": "unknown path"}')

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = self.path.split("/", 3)  # "", "L", label, "v1/..."
        if len(parts) != 4 or parts[1] != "L":
            self._reply(404, b'{"error": "use /L/<label>/v1/..."}')
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        request = httpx.Request(
            "POST", f"http://loopback/{parts[3]}", headers=headers, content=body
        )
        response = self.server.llm.handle_request(request, label=unquote(parts[2]))
        self._reply(response.status_code, response.read())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.llm_server")
    parser.add_argument("--llm-delay", type=float, default=0.0)
    parser.add_argument("--per-token-delay", type=float, default=0.0)
    parser.add_argument("--embedding-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    latency = LatencyModel(
        "served",
        llm_delay_s=args.llm_delay,
        per_token_delay_s=args.per_token_delay,
        embedding_delay_s=args.embedding_delay,
    )
    server = _Server(("127.0.0.1", 0), _Handler)
    server.llm = BenchLLM(StandInLLM(), latency)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(f"BENCH LLM http://127.0.0.1:{server.server_address[1]}", flush=True)
    sys.stdin.read()  # until the parent closes the pipe or exits
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
