"""Errors specific to the LangChain adapters (all part of the core's MemobaseError family)."""

from __future__ import annotations

from memobase_integrations import (
    ConfigurationError,
)

__all__ = ["MissingUserIdError"]


class MissingUserIdError(ConfigurationError):
    """No user id could be resolved for an agent run.

    Raised on purpose instead of falling back to a shared default user: one default would mix
    every person's memory together. The message lists the ways to pass the id.
    """
