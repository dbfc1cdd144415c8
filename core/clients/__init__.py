"""Thin HTTP clients of external services, each over an injected ``httpx.Client``."""

__all__: list[str] = []
