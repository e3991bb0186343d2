"""``import langchain_memobase`` needs only langchain-core; the middleware names its extra.

``langchain`` and ``langgraph`` are hidden by mapping them (and every submodule already
imported) to ``None`` in ``sys.modules``, which makes any import of them fail like a missing
package. ``langchain_memobase`` is re-imported from scratch and the original modules are put
back afterwards, so other tests keep their classes.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

HIDDEN = ("langchain", "langgraph")
EXTRA_HINT = 'pip install "memobase-integrations[langchain]"'


def _is_hidden(name: str) -> bool:
    return any(name == root or name.startswith(root + ".") for root in HIDDEN)


@pytest.fixture
def without_langchain(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in [n for n in sys.modules if _is_hidden(n)]:
        monkeypatch.setitem(sys.modules, name, None)
    for root in HIDDEN:
        monkeypatch.setitem(sys.modules, root, None)
    saved: dict[str, ModuleType] = {
        n: m for n, m in sys.modules.items() if n.split(".")[0] == "langchain_memobase" and m
    }
    for name in saved:
        del sys.modules[name]
    try:
        yield
    finally:
        for name in [n for n in sys.modules if n.split(".")[0] == "langchain_memobase"]:
            del sys.modules[name]
        sys.modules.update(saved)


@pytest.mark.usefixtures("without_langchain")
def test_package_and_core_only_parts_import_without_langchain() -> None:
    with pytest.raises(ImportError):
        importlib.import_module("langchain.agents")  # really hidden

    package = importlib.import_module("langchain_memobase")
    assert package.__version__
    assert package.MemobaseChatMessageHistory.__name__ == "MemobaseChatMessageHistory"
    assert package.MemobaseProfileRetriever.__name__ == "MemobaseProfileRetriever"
    assert package.MemobaseEventRetriever.__name__ == "MemobaseEventRetriever"
    assert [c.__name__ for c in (package.MemobaseProfileTool, package.MemobaseAddProfileTool)]
    assert callable(package.to_memobase_messages)
    assert issubclass(package.MissingUserIdError, Exception)


@pytest.mark.usefixtures("without_langchain")
def test_middleware_without_langchain_names_the_extra() -> None:
    package = importlib.import_module("langchain_memobase")
    with pytest.raises(ImportError) as info:
        package.MemobaseMiddleware  # noqa: B018 - the attribute access is the import
    assert EXTRA_HINT in str(info.value)
    with pytest.raises(ImportError, match="memobase-integrations\\[langchain\\]"):
        importlib.import_module("langchain_memobase.middleware")


def test_unknown_attribute_is_an_attribute_error() -> None:
    import langchain_memobase

    with pytest.raises(AttributeError, match="NoSuchThing"):
        langchain_memobase.NoSuchThing  # noqa: B018
    assert "MemobaseMiddleware" in dir(langchain_memobase)
