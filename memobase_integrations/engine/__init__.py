"""The embedded engine: Memobase's insert-and-process pipeline, in-process."""
