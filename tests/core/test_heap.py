"""``freeze_startup_heap``: start-up's garbage is collected, what is alive is frozen."""

from __future__ import annotations

import gc
import weakref


class _Node:
    other: object = None


def test_garbage_is_collected_first_and_the_live_heap_frozen() -> None:
    gc.disable()  # no automatic collection may take the cycle before the call does
    try:
        garbage = _Node()
        garbage.other = garbage  # a cycle: only a collection frees it
        gone = weakref.ref(garbage)
        del garbage
        assert gone() is not None
        from core.heap import freeze_startup_heap

        freeze_startup_heap()
        assert gone() is None  # collected, not kept frozen for the life of the process
        assert gc.get_freeze_count() > 0
    finally:
        gc.enable()
        gc.unfreeze()
