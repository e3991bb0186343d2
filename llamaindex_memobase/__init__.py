"""LlamaIndex integration for Memobase memory (memory block and memory)."""
