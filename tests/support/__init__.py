"""Helpers shared by every test directory (``tests/`` is on ``sys.path``: ``from support
import wait_until``), among them the fake chat models and engine runs that both the adapter
suites and ``tests/frameworks`` use (``support.lc_models``, ``support.li_models``,
``support.engine_runs``). A directory's own helpers are imported through its folder
(``from embedded.emb_support import ...``), the one name mypy and pytest both give them."""

from .waiting import wait_until

__all__ = ["wait_until"]
