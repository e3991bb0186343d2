"""Every notebook runs top to bottom, offline, on the stand-in LLM (outputs stripped in git).

Each notebook executes in a private copy of ``notebooks/`` (its SQLite files and outbox stay
out of the source tree) with the venv's ``python3`` kernel; the test asserts no cell failed
and that the output shows what the notebook is about.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

#: What each notebook's outputs must show.
EXPECTED: dict[str, tuple[str, ...]] = {
    "01_langchain_agent_memory.ipynb": (
        "offline stand-in LLM",
        "## User Current Profile:",
        "basic_info     name       Alice",
        "read_profile",
    ),
    "02_llamaindex_chat_engine_and_agent.ipynb": (
        "offline stand-in LLM",
        "basic_info::name: Carol",
        "<memobase>",
        "From your past:",
        "Japanese food",
        "recorded assistant | From your past:",
    ),
    "03_custom_profile_config.ipynb": (
        "offline stand-in LLM",
        "refused:",
        "is a valid profile config",
        "education      major    physics",
        "#emotion: nervous",
    ),
    "04_memobase_server.ipynb": (
        "profile before processing: []",
        "basic_info     name     Alice Chen",
        "## User Current Profile:",
        "AuthenticationError ->",
        "MemobaseConnectionError ->",
        "context_default",
    ),
}


def _text_outputs(nb: nbformat.NotebookNode) -> str:
    # A kernel under load may flush one print() as several stream outputs (the words of
    # `print(a, "->", b)` in separate chunks); a reader sees them as one text, so consecutive
    # stream chunks of a cell are joined as they are, without a separator.
    parts: list[str] = []
    for cell in nb.cells:
        streamed = ""
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                streamed += output.get("text", "")
                continue
            if streamed:
                parts.append(streamed)
                streamed = ""
            if "data" in output:
                parts.append(str(output["data"].get("text/plain", "")))
        if streamed:
            parts.append(streamed)
    return "\n".join(parts)


def test_every_notebook_is_covered() -> None:
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(EXPECTED)


def test_committed_notebooks_match_their_generator_and_have_no_outputs() -> None:
    spec = importlib.util.spec_from_file_location(
        "build_notebooks", NOTEBOOKS / "build_notebooks.py"
    )
    assert spec is not None and spec.loader is not None
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    for name in EXPECTED:
        committed = (NOTEBOOKS / name).read_text(encoding="utf-8")
        assert committed == builder.render(name), f"{name}: run notebooks/build_notebooks.py"
        nb = nbformat.reads(committed, as_version=4)  # type: ignore[no-untyped-call]
        assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_offline(name: str, tmp_path: Path) -> None:
    workdir = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, workdir, ignore=shutil.ignore_patterns("*.db*", "__pycache__"))
    nb = nbformat.read(workdir / name, as_version=4)  # type: ignore[no-untyped-call]
    env_backup = dict(os.environ)
    # The notebooks must not depend on the reader's settings (they pass everything explicitly).
    for key in [k for k in os.environ if k.startswith(("MEMOBASE_", "OPENAI_"))]:
        os.environ.pop(key)
    try:
        client = NotebookClient(
            nb,
            kernel_name="python3",
            timeout=300,
            resources={"metadata": {"path": str(workdir)}},
        )
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env_backup)
    text = _text_outputs(nb)
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    for needle in EXPECTED[name]:
        assert needle in text, f"{name}: {needle!r} not in the outputs:\n{text[-4000:]}"
    assert "Traceback" not in text
