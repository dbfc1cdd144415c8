"""Short garbage-collection pauses for the processes that answer requests (webhook, dispatcher).

CPython's full collection (generation 2) walks every object the collector tracks, and the
process's threads wait for it. In the webhook that is all of FastAPI, pydantic and SQLAlchemy as
imported: one such collection took 82 ms on 2 vCPUs with the worker busy, and stalled every
delivery in flight (its event loop and its database thread alike); the dispatcher's took up to
200 ms. What is alive once a service has started lives as long as the process, so
``freeze_startup_heap`` moves it to the permanent generation, which no collection walks (the gc
module's advice): later full collections walk only what was allocated since.
"""

from __future__ import annotations

import gc

__all__ = ["freeze_startup_heap"]


def freeze_startup_heap() -> None:
    """Collect what start-up left unreachable, then exempt every live object from collection."""
    gc.collect()
    gc.freeze()
