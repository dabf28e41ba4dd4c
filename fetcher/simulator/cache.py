"""A small least-recently-used cache of serialized days, bounded by bytes rather than entries (a day of
230 controls is 40 to 90 kB, so an entry count says little about memory)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable


class ByteCache:
    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._size = 0
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: Hashable, make: Callable[[], bytes]) -> bytes:
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                return found
        # Made outside the lock: two threads may both make a value, which is harmless and rare.
        value = make()
        self._put(key, value)
        return value

    def _put(self, key: Hashable, value: bytes) -> None:
        if len(value) > self._max_bytes:
            return
        with self._lock:
            previous = self._items.pop(key, None)
            self._size += len(value) - (len(previous) if previous is not None else 0)
            self._items[key] = value
            while self._size > self._max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._size -= len(evicted)

    def __len__(self) -> int:
        return len(self._items)
