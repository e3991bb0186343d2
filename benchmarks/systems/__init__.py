"""The systems under test, one small adapter each, behind :class:`base.BenchSystem`."""
