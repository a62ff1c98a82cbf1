"""Time every demo, quick and full, and write the table the README links to.

Each demo runs in a fresh process (so torch's import and first-call costs are counted the
same way for all, and one demo's threads or caches cannot slow the next), on the device
given (default: CPU). The table records wall time, whether every claim held, and the
claims that failed, if any.

    python benchmarks/demos.py                       # quick and full, CPU -> docs/demo-timings.md
    python benchmarks/demos.py --modes quick         # only quick mode
    python benchmarks/demos.py --device cuda --out docs/demo-timings-cuda.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dlprep import demos  # noqa: E402  (after the path tweak, so a checkout works uninstalled)


def run_one(demo_id: str, mode: str, device: str, timeout: float, nproc: int | None) -> dict:
    """Run `dlprep demo ID --json` in a new process; return its report plus wall time."""
    args = [sys.executable, "-m", "dlprep", "demo", demo_id, "--json", "--device", device]
    if nproc:
        args += ["--nproc", str(nproc)]
    if mode == "quick":
        args.append("--quick")
    start = time.perf_counter()
    try:
        done = subprocess.run(
            args,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    except subprocess.TimeoutExpired:
        return {"wall": timeout, "held": None, "failed": [f"timed out after {timeout:.0f} s"]}
    wall = time.perf_counter() - start
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        return {"wall": wall, "held": None, "failed": [done.stderr.strip()[-200:]]}
    failed = [c["text"] for c in report["claims"] if not c["holds"]]
    return {
        "wall": wall,
        "seconds": report["seconds"],
        "held": not failed,
        "failed": failed,
        "claims": len(report["claims"]),
    }


def table(rows: list[dict], modes: list[str], device: str) -> str:
    head = ["demo"] + [f"{m} (s)" for m in modes] + ["claims hold"]
    lines = [
        "# Demo timings",
        "",
        f"Measured by `python benchmarks/demos.py` on {platform.platform()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, device {device}. "
        "Wall time of `dlprep demo NAME --json [--quick]` in a fresh process, torch import "
        "included; distributed demos with `--nproc 2` (process start-up included).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" + "--:|" * len(modes) + "---|",
    ]
    for row in rows:
        cells = [f"`{row['demo']}`" + (f" ({row['ranks']} ranks)" if row["ranks"] else "")]
        verdicts = []
        for mode in modes:
            r = row[mode]
            cells.append(f"{r['wall']:.1f}")
            if r["held"] is not True:
                verdicts.append(f"{mode}: ✗ {'; '.join(r['failed'])}")
        cells.append("✓ all" if not verdicts else " / ".join(verdicts))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", nargs="+", default=["quick", "full"], choices=["quick", "full"])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--only", nargs="*", help="only these demo ids")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--nproc", type=int, default=2, help="ranks for the distributed demos")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "demo-timings.md")
    args = parser.parse_args()

    infos = list(demos.available().values())
    if args.only:
        infos = [d for d in infos if d.id in args.only]
    rows = []
    for info in infos:
        row = {"demo": info.id, "ranks": args.nproc if info.distributed else None}
        for mode in args.modes:
            nproc = args.nproc if info.distributed else None
            row[mode] = run_one(info.id, mode, args.device, args.timeout, nproc)
            mark = {True: "ok", False: "CLAIM FAILED", None: "ERROR"}[row[mode]["held"]]
            print(f"{info.id:28s} {mode:5s} {row[mode]['wall']:7.1f} s  {mark}", flush=True)
        rows.append(row)
    text = table(rows, args.modes, args.device)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
