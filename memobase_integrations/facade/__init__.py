"""``Memobase`` and ``UserMemory``: the one API the adapters (and apps) call.

The facade maps user ids, converts turns into blobs, caches contexts per user (dropped when
that user's processing finishes) and forwards everything else to the backend. It holds no
I/O of its own, so sync and async twins stay trivially identical.

Its modules: :mod:`.client` (``Memobase``: construction, the context refresher, close and
the project-wide calls), :mod:`.user` (``UserMemory``: one user's calls),
:mod:`.context_cache` and :mod:`.checks` (the argument checks). Both classes are imported
from here, the path they have always had.
"""

from .client import Memobase
from .user import UserMemory

__all__ = ["Memobase", "UserMemory"]
