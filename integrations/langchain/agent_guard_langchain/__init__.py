"""agent_guard adapter for langchain."""

__all__: list[str] = []
