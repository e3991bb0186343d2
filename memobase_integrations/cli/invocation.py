"""How to run this CLI again from where the user is: for commands we print for them to copy.

After the README's one-liner (``python3 -m venv .venv && .venv/bin/pip install ... &&
.venv/bin/memobase-integrations demo``) the venv is not activated, so a bare
``memobase-integrations profile ...`` is "command not found". Printed follow-up commands use
the form that works: the bare name when that is what runs, else the script's path as typed
(``.venv/bin/memobase-integrations``), else ``<python> -m memobase_integrations``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sys
from pathlib import Path

__all__ = ["PROG", "command_prefix"]

PROG = "memobase-integrations"


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it is below it, else absolute."""
    absolute = path.absolute()
    try:
        relative = absolute.relative_to(Path.cwd())
    except ValueError:
        return shlex.quote(str(absolute))
    text = str(relative)
    return shlex.quote(text if os.sep in text else f".{os.sep}{text}")


def command_prefix(argv0: str | None = None, executable: str | None = None) -> str:
    """The shell words that run this CLI from the current directory."""
    launched = Path(argv0 if argv0 is not None else sys.argv[0])
    on_path = shutil.which(PROG)
    if launched.name == PROG and launched.exists():
        if on_path and Path(on_path).resolve() == launched.resolve():
            return PROG
        return _shown(launched)
    python = Path(executable if executable is not None else sys.executable)
    return f"{_shown(python)} -m memobase_integrations"
