"""LlamaIndex integration for Memobase long-term user memory.

(Full guide below is completed with the tests.)
"""

from .block import MemobaseMemoryBlock
from .memory import LiteralTextBlock, MemobaseMemory
from .messages import to_memobase_message, to_memobase_messages
from .tools import memobase_tools

__all__ = [
    "LiteralTextBlock",
    "MemobaseMemory",
    "MemobaseMemoryBlock",
    "memobase_tools",
    "to_memobase_message",
    "to_memobase_messages",
]
