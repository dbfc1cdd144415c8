"""Collection around start-up: ``freeze_startup_heap`` collects start-up's garbage and freezes
what is alive; ``pause_collections`` and ``end_startup`` keep the collector off while a process
imports, then freeze what it built and turn the collector back on."""

from __future__ import annotations

import gc
import weakref

from core.heap import end_startup, freeze_startup_heap, pause_collections


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
        freeze_startup_heap()
        assert gone() is None  # collected, not kept frozen for the life of the process
        assert gc.get_freeze_count() > 0
    finally:
        gc.enable()
        gc.unfreeze()


def test_no_collection_runs_during_start_up_and_what_it_built_is_frozen_after() -> None:
    pause_collections()
    try:
        assert not gc.isenabled()
        built = [_Node() for _ in range(2000)]  # enough allocations to trigger a collection
        assert gc.get_freeze_count() == 0
        end_startup()
        assert gc.isenabled()
        assert gc.get_freeze_count() >= len(built)
    finally:
        gc.enable()
        gc.unfreeze()
