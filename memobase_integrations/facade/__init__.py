"""``Memobase`` and ``UserMemory``: the one API the adapters (and apps) call.

The facade maps user ids, converts turns into blobs, caches contexts per user (dropped when
that user's processing finishes) and forwards everything else to the backend. It holds no
I/O of its own, so sync and async twins stay trivially identical.
"""

from .client import Memobase
from .user import UserMemory

__all__ = ["Memobase", "UserMemory"]
