"""The ``memobase-integrations`` command line (``python -m memobase_integrations``)."""

from .app import main, run

__all__ = ["main", "run"]
