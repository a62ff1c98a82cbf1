"""Measuring the memory autograd keeps for backward, shared by the demos that compare it
(activation checkpointing, pipeline schedules)."""

from __future__ import annotations

import weakref


class SavedActivations:
    """Bytes held by the tensors autograd saves for backward, each memory block counted once:
    live now, and the peak. Tensors that exist anyway (weights, the batch) are left out."""

    def __init__(self, tensors):
        self.skip = {t.untyped_storage().data_ptr() for t in tensors}
        self.holders: dict[int, int] = {}  # memory block -> saved tensors that use it
        self.live = 0
        self.peak = 0

    def pack(self, t):
        block = t.untyped_storage()
        key = block.data_ptr()
        if key in self.skip:
            return t
        if key not in self.holders:
            self.holders[key] = 0
            self.live += block.nbytes()
            self.peak = max(self.peak, self.live)
        self.holders[key] += 1
        box = _Box(t)
        weakref.finalize(box, self._release, key, block.nbytes())  # when autograd drops it
        return box

    def _release(self, key, nbytes):
        self.holders[key] -= 1
        if self.holders[key] == 0:
            del self.holders[key]
            self.live -= nbytes

    @staticmethod
    def unpack(box):
        return box.t if isinstance(box, _Box) else box


class _Box:
    def __init__(self, t):
        self.t = t
