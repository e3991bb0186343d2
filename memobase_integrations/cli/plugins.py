"""Commands that live outside the core, found through an entry point group.

The demo drives LangChain and LlamaIndex through the adapters, so it lives in its own
package (``memobase_demo``) above them; the core must never import it. It declares
``[project.entry-points."memobase_integrations.commands"] demo = "memobase_demo.run:run_demo"``
and the CLI loads it by name here, at the moment the command runs.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any

from .exitcodes import CLIError, ExitCode

__all__ = ["GROUP", "load_command"]

#: The entry point group of commands provided by other packages of the distribution.
GROUP = "memobase_integrations.commands"


def load_command(name: str) -> Callable[..., Any]:
    """The callable registered as ``name`` in :data:`GROUP`; a ``CLIError`` saying how to get
    it when the distribution's metadata lacks it (a partial or broken install)."""
    found = entry_points(group=GROUP, name=name)
    if not found:
        raise CLIError(
            f"The {name!r} command is not installed (no entry point {name!r} in the group "
            f"{GROUP!r}). Reinstall the package: pip install --force-reinstall "
            "memobase-integrations.",
            ExitCode.CONFIG,
        )
    command: Callable[..., Any] = next(iter(found)).load()
    return command
