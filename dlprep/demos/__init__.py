"""The demos: one file each in this folder, found without importing them (no torch for --list).

A demo module `dlprep/demos/bn_vs_ln.py` is the demo `bn-vs-ln`. Its docstring's first line
is its summary; `STATISTICAL = True` marks a demo whose effect depends on the random seed
(the tests run it with several). It defines `run(ctx: DemoContext) -> DemoResult`.
"""

from __future__ import annotations

import ast
import difflib
import importlib
import random
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from dlprep.demos._core import DemoContext, DemoReport, DemoResult
from dlprep.errors import NotFoundError, UsageError

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class DemoInfo:
    id: str
    module: str
    summary: str
    statistical: bool
    distributed: bool


@cache
def available() -> dict[str, DemoInfo]:
    """Every demo, by id, read from the source files' docstrings and constants."""
    demos = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstring = ast.get_docstring(tree) or ""
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        demo_id = path.stem.replace("_", "-")
        demos[demo_id] = DemoInfo(
            id=demo_id,
            module=f"dlprep.demos.{path.stem}",
            summary=docstring.strip().splitlines()[0] if docstring.strip() else "",
            statistical=bool(constants.get("STATISTICAL", False)),
            distributed=bool(constants.get("DISTRIBUTED", False)),
        )
    return demos


def get(demo_id: str) -> DemoInfo:
    demos = available()
    if demo_id in demos:
        return demos[demo_id]
    close = difflib.get_close_matches(demo_id, list(demos), n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see 'dlprep demo --list'"
    raise NotFoundError(f"no demo {demo_id!r}{hint}")


def check_device(device: str) -> None:
    if device not in DEVICES:
        raise UsageError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")


def resolve_device(device: str) -> str:
    """'auto' -> 'cuda' when a GPU is present, else 'cpu'; asking for absent CUDA is an error."""
    check_device(device)
    import torch

    has_cuda = torch.cuda.is_available()
    if device == "cuda" and not has_cuda:
        raise UsageError("--device cuda: no CUDA GPU is available here (try --device cpu)")
    if device == "auto":
        return "cuda" if has_cuda else "cpu"
    return device


def run(
    demo_id: str,
    *,
    device: str = "auto",
    seed: int = 0,
    quick: bool = False,
    nproc: int | None = None,
) -> DemoReport:
    """Run a demo and time it. Seeds Python's and torch's generators first.

    Distributed demos run as `nproc` processes (default 2); the others in this process.
    """
    info = get(demo_id)
    if info.distributed:
        check_device(device)
        from dlprep.demos import _dist

        return _dist.launch(info.module, nproc or 2, device=device, seed=seed, quick=quick)
    if nproc is not None:
        raise UsageError(f"{demo_id} runs in one process; --nproc is for the distributed demos")
    resolved = resolve_device(device)
    import torch

    random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too
    module = importlib.import_module(info.module)
    threads = torch.get_num_threads()
    if quick:
        # Quick mode's tensors are tiny: a second thread buys nothing and, on a busy machine,
        # every op waits for it (measured: 10x the CPU time on a loaded 2-core box).
        torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        result: DemoResult = module.run(DemoContext(resolved, seed, quick))
        if resolved == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    return DemoReport(info.id, resolved, seed, quick, seconds, result)


__all__ = ["DemoContext", "DemoInfo", "DemoReport", "DemoResult", "available", "get", "run"]
