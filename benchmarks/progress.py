"""Benchmark progress features on a simulated learner's review log of 1,000,000 reviews.

Measures, end to end (`python -m dlprep ...` in a subprocess, bank cache warmed first):

1. `dlprep stats --json`                      target: under 1 s
2. `dlprep export markdown -o FILE`           target: under 1 s
3. `dlprep export anki -o FILE` (the whole shipped bank)   target: under 2 s
4. `dlprep optimize` (fits a sample of 10,000 answers by default), once

The history comes from dlprep.simulate: a seeded learner who forgets faster than FSRS's
defaults assume, studying a synthetic bank of --cards questions for three years (the
scheduler plans every review; 1 in 7 days skipped), cut at --reviews answers. Each figure
is the median (and min) of --repeat runs; results go to --out as progress.json and
progress.md, and the table is printed.

    python benchmarks/progress.py                       # 1M reviews, 100k questions
    python benchmarks/progress.py --reviews 100000 --cards 10000 --repeat 3   # quicker
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from study_loop import build_bank, compile_package, machine, question_ids, write_bank_yaml  # noqa: E402

from dlprep.simulate import simulate  # noqa: E402
from dlprep.store import Store  # noqa: E402

START = datetime(2023, 11, 1, 7, tzinfo=timezone.utc)
CHUNK = 50_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def generate(home: Path, cards: int, reviews: int) -> dict:
    """Simulate and store the history in chunks (each one transaction)."""
    history = itertools.islice(
        simulate(
            question_ids(cards),
            days=3 * 365,
            start=START,
            new_per_day=max(20, cards // 500),
            reviews_per_day=5000,
            skip_day=1 / 7,
            session_hours=12,  # a very heavy user: a million answers in under three years
            seed=7,
        ),
        reviews,
    )
    written, last = 0, None
    with Store(home / "progress.db") as store:
        while chunk := list(itertools.islice(history, CHUNK)):
            written += store.append_history(
                (r.question_id, r.result, r.reviewed_at, r.duration_ms) for r in chunk
            )
            last = chunk[-1].reviewed_at
            log(f"  {written:,} reviews written (up to {last:%Y-%m-%d})")
    return {"reviews": written, "last_review": last.isoformat() if last else None}


def timed(args: list[str], env: dict, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "dlprep", *args], env=env, capture_output=True, text=True
        )
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"dlprep {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reviews", type=int, default=1_000_000)
    parser.add_argument("--cards", type=int, default=100_000, help="questions in the bank")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    args = parser.parse_args(argv)

    compile_package()
    work = Path(tempfile.mkdtemp(prefix="dlprep-progress-bench-"))
    home, bank_dir = work / "home", work / "bank"
    home.mkdir()
    log(f"workspace {work}")
    _, per_topic = build_bank(args.cards)
    write_bank_yaml(per_topic, bank_dir)
    started = time.perf_counter()
    data = generate(home, args.cards, args.reviews)
    data["simulate_and_write_s"] = round(time.perf_counter() - started, 1)
    env = {**os.environ, "DLPREP_HOME": str(home), "DLPREP_BANK": str(bank_dir)}
    timed(["stats", "--json"], env, 1)  # warm the bank cache
    plain_env = {**os.environ, "DLPREP_HOME": str(home)}

    figures = {
        "stats": ("`dlprep stats --json`", timed(["stats", "--json"], env, args.repeat), 1.0),
        "markdown": (
            "`dlprep export markdown -o FILE`",
            timed(["export", "markdown", "-o", str(work / "r.md")], env, args.repeat),
            1.0,
        ),
        "anki": (
            "`dlprep export anki -o FILE` (whole shipped bank)",
            timed(["export", "anki", "-o", str(work / "d.apkg")], plain_env, args.repeat),
            2.0,
        ),
        "optimize": (
            "`dlprep optimize` (10,000-answer sample)",
            timed(["optimize"], env, 1),
            None,
        ),
    }
    rows = [
        "| step | median | min | target |",
        "|---|---:|---:|---|",
    ]
    results = {}
    for key, (label, times, target) in figures.items():
        median = statistics.median(times)
        verdict = "" if target is None else ("✓" if median < target else "✗") + f" < {target:g} s"
        rows.append(f"| {label} | {median:.2f} s | {min(times):.2f} s | {verdict} |")
        results[key] = {"median_s": median, "min_s": min(times), "runs": times}
    info = {**machine(), **data, "cards": args.cards, "repeat": args.repeat}
    table = (
        f"{data['reviews']:,} simulated reviews of {args.cards:,} questions "
        f"(simulated and written in {data['simulate_and_write_s']} s)\n\n" + "\n".join(rows) + "\n"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "progress.json").write_text(
        json.dumps({"info": info, "results": results}, indent=2) + "\n", encoding="utf-8"
    )
    (args.out / "progress.md").write_text(table, encoding="utf-8")
    print(table)
    if not args.keep:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    else:
        log(f"kept {work}")


if __name__ == "__main__":
    main()
