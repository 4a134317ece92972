"""agent_guard adapter for llamaindex."""

__all__: list[str] = []
