"""Side-by-side benchmarks of memobase-integrations against its peers (issue 8).

Run everything with ``python -m benchmarks`` from the repository root; see ``README.md``.
"""
