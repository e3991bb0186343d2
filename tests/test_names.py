"""Names and habits (issue 15): exception names that do not shadow builtins, with the old
ones kept one release as deprecated aliases; one version source; the LICENSE file matching
the distribution's declared license."""

from __future__ import annotations

import builtins
import importlib.metadata
import tomllib
import warnings
from pathlib import Path

import pytest

import memobase_integrations
from memobase_integrations import errors

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("module", [errors, memobase_integrations])
@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("ConnectionError", errors.MemobaseConnectionError),
        ("TimeoutError", errors.MemobaseTimeoutError),
    ],
)
def test_old_exception_names_still_work_with_a_deprecation_warning(
    module: object, old: str, new: type[Exception]
) -> None:
    with pytest.warns(DeprecationWarning, match=f"{old} is deprecated.*{new.__name__}"):
        alias = getattr(module, old)
    assert alias is new
    # code that caught the old name still catches what the package raises
    with pytest.raises(alias), warnings.catch_warnings():
        raise errors.MemobaseTimeoutError("slow") if old == "TimeoutError" else new("down")


def test_from_import_of_an_old_name_warns_too() -> None:
    with pytest.warns(DeprecationWarning):
        from memobase_integrations.errors import TimeoutError as OldTimeout
    assert OldTimeout is errors.MemobaseTimeoutError


def test_no_public_exception_shadows_a_builtin() -> None:
    for name in (*errors.__all__, *memobase_integrations.__all__):
        assert not hasattr(builtins, name), name
    assert issubclass(errors.MemobaseTimeoutError, errors.MemobaseConnectionError)
    assert issubclass(errors.StoreError, errors.MemobaseError)
    assert not issubclass(errors.StoreError, errors.ServerError)


def test_unknown_attributes_still_raise_attribute_error() -> None:
    with pytest.raises(AttributeError, match="NoSuchError"):
        _ = errors.NoSuchError  # type: ignore[attr-defined]
    with pytest.raises(AttributeError, match="NoSuchError"):
        _ = memobase_integrations.NoSuchError  # type: ignore[attr-defined]


def test_the_version_has_one_source() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "version" not in project["project"]
    assert "version" in project["project"]["dynamic"]
    about = project["tool"]["hatch"]["version"]["path"]
    assert (ROOT / about).read_text(encoding="utf-8").count("__version__ =") == 1
    assert importlib.metadata.version("memobase-integrations") == memobase_integrations.__version__


def test_the_license_file_matches_the_declared_license() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert project["project"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
