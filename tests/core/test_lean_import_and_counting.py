"""Issue 13 item 4, the parts without a store: a light ``import memobase_integrations``, and
the token-count shortcuts on the hot path giving exactly the results of exact counting.

* ``import memobase_integrations`` loads none of openai, SQLAlchemy (its dialects), typer,
  the CLI or tiktoken (checked in a fresh interpreter's ``sys.modules``), and every public
  name still resolves (PEP 562 lazy exports);
* ``turn_to_blobs`` decides the common one-blob case by UTF-8 length: the blobs are the ones
  exact token packing gives, for any text (hypothesis, including multi-byte text near the
  limit);
* context packing counts a text only when its UTF-8 length could decide the budget: the
  number kept is the one exact running counts give.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import memobase_integrations
from memobase_integrations import messages
from memobase_integrations.engine import context as context_module
from memobase_integrations.tokens import count_tokens

HEAVY = [
    "openai",
    "sqlalchemy",
    "sqlalchemy.dialects",
    "typer",
    "tiktoken",
    "httpx",
    "memobase_integrations.cli",
    "memobase_integrations.facade",
]


def test_importing_the_package_loads_no_heavy_module() -> None:
    code = (
        "import sys, json, memobase_integrations\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout) == []


def test_every_public_name_resolves_lazily_to_its_module_object() -> None:
    import importlib

    from memobase_integrations import facade, settings

    package = memobase_integrations
    lazy = package._LAZY
    # Every exported name is either imported eagerly (the exceptions, the version) or lazily
    # mapped, and every lazily mapped name is exported: a name added to __all__ without an
    # entry here (or the reverse) fails, not just a missing attribute.
    assert set(lazy) <= set(package.__all__)
    eager = set(package.__all__) - set(lazy)
    assert all(name in vars(package) for name in eager), eager - set(vars(package))
    for name in package.__all__:
        value = getattr(package, name)
        assert value is not None, name
        if name in lazy:
            home = importlib.import_module(f"{package.__name__}.{lazy[name]}")
            assert value is getattr(home, name), name
    assert memobase_integrations.Memobase is facade.Memobase
    assert memobase_integrations.FlushPolicy is settings.FlushPolicy
    assert set(memobase_integrations.__all__) <= set(dir(memobase_integrations))
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        memobase_integrations.Nope  # noqa: B018


def test_star_import_in_a_fresh_interpreter_binds_every_public_name() -> None:
    code = (
        "import json\n"
        "from memobase_integrations import *\n"
        "import memobase_integrations as m\n"
        "print(json.dumps([n for n in m.__all__ if globals().get(n) is not getattr(m, n)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert json.loads(out.stdout) == []


_TEXT = st.text(
    alphabet=st.sampled_from([*list("ab cde\nfgh.,!?"), "é", "☕", "日", "本", "🙂", "\t"]),
    max_size=120,
)
_MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant"]), "content": _TEXT},
    optional={"name": st.sampled_from(["Ana", "日本語の名前", "Bot"])},
)


@settings(max_examples=150, deadline=None)
@given(turn=st.lists(_MESSAGE, max_size=5), limit=st.integers(min_value=40, max_value=160))
def test_one_blob_shortcut_gives_the_blobs_of_exact_packing(
    turn: list[dict[str, str]], limit: int
) -> None:
    fast = messages.turn_to_blobs(turn, max_blob_tokens=limit)
    real = messages._fits_one_blob
    try:
        messages._fits_one_blob = lambda wires, max_tokens: False  # type: ignore[assignment]
        exact = messages.turn_to_blobs(turn, max_blob_tokens=limit)
    finally:
        messages._fits_one_blob = real
    assert fast == exact


def _exact_fitting(texts: list[str], budget: int, keep_first: bool) -> int:
    used, keep = 0, 1 if keep_first else 0
    for i, text in enumerate(texts):
        used += count_tokens(text)
        if used > budget:
            return keep if keep_first else i
        keep = i + 1
    return len(texts)


@settings(max_examples=300, deadline=None)
@given(
    texts=st.lists(_TEXT, max_size=12),
    budget=st.integers(min_value=0, max_value=200),
    keep_first=st.booleans(),
)
def test_counting_only_where_it_matters_keeps_what_exact_counts_keep(
    texts: list[str], budget: int, keep_first: bool
) -> None:
    got = context_module._fitting(texts, budget, keep_first=keep_first)
    assert got == _exact_fitting(texts, budget, keep_first)
