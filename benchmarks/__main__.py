"""``python -m benchmarks``: run every benchmark and write ``benchmarks/results/``."""

from benchmarks.run import main

raise SystemExit(main())
