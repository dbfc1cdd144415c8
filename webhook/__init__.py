"""The FastAPI service: 3JMS image events in (signed, validated, stored), jobs and their status out.

``webhook.app:create_app`` is the uvicorn factory; ``webhook.dispatcher`` creates the flow runs.
"""

from webhook.app import create_app

__all__ = ["create_app"]
