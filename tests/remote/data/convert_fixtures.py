"""Rebuild ``tests/remote/data/*.json`` from the recorded real-server exchanges.

Source: ``shared/fixtures/memobase-server/`` (real Memobase server 0.0.42 on loopback, see that
folder's ``00_index.json``). What this keeps per exchange: name, method, path, query pairs,
body, response status and body. What it drops: timings, LLM-call logs, and every
``Authorization`` header, replaced by ``auth``: ``"valid"`` (the recording server's token),
``"none"`` (no header) or ``"rejected"`` (a deliberately wrong token or scheme). No key is
kept. Run: ``python tests/remote/data/convert_fixtures.py /path/to/memobase-server``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SCENARIOS = [
    "01_healthcheck_and_users.json",
    "02_insert_async_flush_sync_then_read.json",
    "03_insert_wait_process_true_chat_results.json",
    "04_summary_and_other_blob_types.json",
    "05_bad_inputs.json",
    "06_buffer_and_blob_endpoints.json",
    "07_profile_event_search_endpoints.json",
    "08_project_config_event_tags_strict.json",
    "09_organize_and_resummary_delete_profiles.json",
    "11_official_sdk_test_suite.json",
    "12_official_sdk_flow.json",
    "14_llm_unavailable.json",
]


def _auth(headers: dict[str, str]) -> str:
    value = headers.get("authorization")
    if value is None:
        return "none"
    return "valid" if value == "Bearer secret" else "rejected"


def _exchange(e: dict[str, Any]) -> dict[str, Any]:
    r = e["request"]
    return {
        "name": e["name"],
        "request": {
            "method": r["method"],
            "path": r["path"],
            "query": r["query"],
            "auth": _auth(r.get("headers", {})),
            "content_type": r.get("headers", {}).get("content-type"),
            "body": r["body"],
        },
        "response": {"status": e["response"]["status"], "body": e["response"]["body"]},
    }


def main(src: Path) -> None:
    out = Path(__file__).parent
    for name in SCENARIOS:
        data = json.loads((src / name).read_text())
        groups = [k for k in ("exchanges", "exchanges_run1", "exchanges_run2") if k in data]
        exchanges = [_exchange(e) for k in groups for e in data[k] if "request" in e]
        doc = {"source": f"shared/fixtures/memobase-server/{name}", "title": data["title"]}
        doc["exchanges"] = exchanges
        (out / name).write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
