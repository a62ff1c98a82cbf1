"""A distributed 'demo' that misbehaves on purpose: rank 1 raises, hangs or dies at exit."""

from __future__ import annotations

import os
import time

import torch.distributed as dist

from dlprep.demos._core import DemoResult
from dlprep.demos._dist import entry

FAULT = os.environ.get("DLPREP_TEST_FAULT", "none")


def run(ctx, world):
    if world.rank == 1 and FAULT == "raise":
        raise RuntimeError("rank one exploded on purpose")
    if world.rank == 1 and FAULT == "hang":
        time.sleep(3600)
    dist.barrier()
    result = DemoResult()
    result.claim("the ranks met at a barrier", True)
    if FAULT == "claim-fails":
        result.claim("this claim does not hold", False)
    return result


if __name__ == "__main__":
    if FAULT == "abort-at-exit" and os.environ.get("RANK") == "1":
        import pathlib
        import signal

        # Simulate the intermittent teardown crash: abort right after the done mark is
        # written, i.e. after this rank's work passed the final barrier.
        original_touch = pathlib.Path.touch

        def touch_then_abort(self, *args, **kwargs):
            original_touch(self, *args, **kwargs)
            if self.name.startswith("done-"):
                os.kill(os.getpid(), signal.SIGABRT)

        pathlib.Path.touch = touch_then_abort
    entry("rank-faults", run)
