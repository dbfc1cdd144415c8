"""The Streamlit dashboard: read-only views of the job tables and the object store.

Start it with ``packshot dashboard`` (see ``dashboard.launch``); the pages live in ``app_pages/``.
"""

__all__: list[str] = []
