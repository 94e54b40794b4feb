"""A bounded result cache for sampling requests (issue #24): a class asks for the same rows again and again.

Every sample is a pure function of its request (same request ⇒ same pixels, tested), so a result can be kept and handed
out again. The cache is an LRU bounded in bytes; a request that is being computed is not computed twice: later callers
with the same key wait for the first one's result.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, Hashable

import torch

DEFAULT_BYTES = 64 * 2**20  # per model: about 1,300 rows of 8 emoji, or 10,000 rows of 8 digits (float32)


def tensor_bytes(value: torch.Tensor) -> int:
    return value.element_size() * value.nelement()


class ResultCache:
    """An LRU of results (tensors, unless size_of says how to weigh another kind) keyed by the full request, bounded in
    bytes, with in-flight de-duplication."""

    def __init__(self, max_bytes: int = DEFAULT_BYTES, size_of: Callable[[Any], int] = tensor_bytes):
        assert max_bytes > 0, max_bytes
        self.max_bytes, self.size_of = max_bytes, size_of
        self.bytes = 0
        self.hits = self.misses = 0
        self._items: OrderedDict[Hashable, torch.Tensor] = OrderedDict()
        self._pending: dict[Hashable, threading.Event] = {}
        self._lock = threading.Lock()

    def get_or_compute(self, key: Hashable, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The cached result for key, or compute() once (concurrent callers with the same key wait for it)."""
        while True:
            with self._lock:
                if key in self._items:
                    self._items.move_to_end(key)
                    self.hits += 1
                    return self._items[key]
                event = self._pending.get(key)
                if event is None:  # nobody computes it: this caller does
                    self._pending[key] = threading.Event()
                    self.misses += 1
                    break
            event.wait()  # another caller computes it; then look again (it may have failed)
        try:
            result = compute()
            self._store(key, result)
            return result
        finally:
            with self._lock:
                self._pending.pop(key).set()

    def peek(self, key: Hashable) -> torch.Tensor | None:
        """The cached result for key, or None; counts a hit when there is one (no computing, no waiting)."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return self._items[key]

    def put(self, key: Hashable, value: torch.Tensor) -> None:
        """Keep value as key's result (a part of a larger result that a later request may ask for alone)."""
        self._store(key, value)

    def _store(self, key: Hashable, value: torch.Tensor) -> None:
        size = self.size_of(value)
        if size > self.max_bytes:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self.bytes += size
            while self.bytes > self.max_bytes:
                _, old = self._items.popitem(last=False)
                self.bytes -= self.size_of(old)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def __len__(self) -> int:
        return len(self._items)
