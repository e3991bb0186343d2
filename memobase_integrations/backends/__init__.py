"""Backends: where memories live. One protocol (:class:`Backend`), two implementations.

The value types the protocol uses (``ContextOptions``, ``MemoryStatus``...) live in
:mod:`memobase_integrations.values` and are exported from the package root.
"""

from .base import Backend

__all__ = ["Backend"]
