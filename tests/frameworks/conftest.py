"""The framework-contract suites reuse the adapters' fakes (tests/langchain, tests/llamaindex)."""

from __future__ import annotations

import sys
from pathlib import Path

_TESTS = Path(__file__).resolve().parent.parent
for _folder in ("langchain", "llamaindex"):
    _path = str(_TESTS / _folder)
    if _path not in sys.path:
        sys.path.insert(0, _path)
