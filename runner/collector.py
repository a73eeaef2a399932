"""Pausing Python's cyclic garbage collector around large batch work, or keeping it to
the objects the work makes.

Loading a thousand journey files or simulating a hundred thousand contacts
keeps many small objects alive (YAML nodes, contact states). The cyclic
collector would walk all of them again at every threshold: measured, it
doubled ``journey validate``'s time and added a fifth to a simulation. The
objects made there are freed by reference counting (the engine breaks its one
cycle itself), so the collector has nothing to find; it runs again afterwards.

A production tick runs for as long as there is due work, so it keeps the
collector on, but only for what the tick makes: everything alive when it
starts (modules, the project, compiled templates, the engine) is frozen out of
the collector's sight and handed back when it ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """Run the block with the cyclic collector off (restored after, also on errors)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def collector_on_new_objects() -> Iterator[None]:
    """Run the block with the objects alive at its start out of the collector's sight.

    A full collection walks every tracked object; a busy tick's would walk the
    whole process's (about 50k objects, some 40 ms) every few hundred sends. Frozen
    (``gc.freeze``), they are skipped until the block ends and unfrozen, so a
    collection walks only the objects made since and garbage cycles made meanwhile
    are still collected; cycles among the frozen objects wait for a collection after
    the block. Nested or concurrent blocks are harmless: the first to end gives the
    collector the sight of every object again, which only loses the saving."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
