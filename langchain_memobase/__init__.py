"""LangChain integration for Memobase memory (middleware, chat history, retrievers, tools)."""
