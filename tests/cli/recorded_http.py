"""A loopback HTTP server that answers with recorded Memobase server exchanges.

The CLI runs in its own process, so an ``httpx.MockTransport`` cannot reach it; this serves
the same recorded answers (``notebooks/recorded_server.py``, data in ``notebooks/data/``) on a
real 127.0.0.1 socket instead.
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

_MODULE = Path(__file__).resolve().parents[2] / "notebooks" / "recorded_server.py"


def recorded_server(*files: str) -> Any:
    spec = importlib.util.spec_from_file_location("recorded_server", _MODULE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RecordedServer(*files)


@contextmanager
def serve(handler: Any) -> Iterator[str]:
    """Run ``handler`` (httpx.Request -> httpx.Response) on a loopback port; yield its URL."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            request = httpx.Request(
                self.command,
                f"http://{self.headers.get('host')}{self.path}",
                headers=dict(self.headers.items()),
                content=body,
            )
            response: httpx.Response = handler(request)
            payload = response.content
            self.send_response(response.status_code)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
