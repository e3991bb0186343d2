"""The distribution's version, in one place: ``pyproject.toml`` reads it at build time
(``[tool.hatch.version]``) and the package exposes it as ``memobase_integrations.__version__``
(the CLI's ``--version``, the ``serve`` app and ``langchain_memobase.__version__`` use that)."""

__version__ = "0.1.0"
