"""Helpers shared by every test directory (``tests/`` is on ``sys.path``: ``from support
import wait_until``)."""

from .waiting import wait_until

__all__ = ["wait_until"]
