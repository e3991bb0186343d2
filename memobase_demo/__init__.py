"""``memobase-integrations demo``: the scripted multi-session demo (LangChain and LlamaIndex
apps sharing one embedded store).

A package of its own, above the adapters it drives, so the core
(``memobase_integrations``) never imports a framework or an adapter. The CLI reaches it
through the ``memobase_integrations.commands`` entry point group (``demo`` ->
:func:`memobase_demo.run.run_demo`), never by a static import.
"""

from .run import run_demo

__all__ = ["run_demo"]
