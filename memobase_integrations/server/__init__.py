"""``memobase-integrations serve``: Memobase's HTTP API on the embedded engine.

The official Memobase SDKs (Python, TypeScript, Go), its MCP server and this project's own
remote backend talk to it unchanged: the routes, request and response shapes, the
``{data, errno, errmsg}`` envelope and the status codes are those recorded from a real
Memobase server (``memobase_server`` 0.0.42). Behind them runs the embedded engine on a
SQLite file or PostgreSQL, with its flush worker beside the web server.

Needs the ``server`` extra (FastAPI and uvicorn): ``pip install
'memobase-integrations[server]'``. Nothing in the core imports this package, so apps that
only embed the engine never load a web framework.

Modules: :mod:`.config` (settings and their checks), :mod:`.app` (the ASGI app factory and
its lifespan), :mod:`.auth` (bearer tokens), :mod:`.limits` (body size), :mod:`.envelope`
(the answer format and the error mapping), :mod:`.params` (shared request types),
:mod:`.routes` (one module per resource), :mod:`.runner` (uvicorn, workers, shutdown).
The deliberate differences from the real server are listed in ``docs/internals.md``
("Deliberate differences of ``serve``").
"""

from __future__ import annotations

from .app import create_app
from .config import ServerConfig

__all__ = ["ServerConfig", "create_app"]
