"""Benchmark the study loop: quiz start-up, `dlprep stats` and finding due cards at scale.

Measures, in one run, and prints a Markdown table of:

1. Time to the first quiz prompt: wall time from starting `python -m dlprep quiz` (empty
   progress database, built-in bank, bank cache warmed by one untimed run, stdin a pipe)
   until its answer prompt (`... :h help) >`) appears on stdout, against the baseline
   `python -c "import typer, rich, pydantic, yaml"`. Target: ratio <= 1.5.
2. `dlprep stats` on a synthetic history of 100,000 cards and 1,000,000 reviews (two years,
   mostly Good, fixed seed): `progress.build_progress` in-process, and `python -m dlprep
   stats --json` end to end (the synthetic bank written as YAML, its cache warmed first).
   Target: under 1 s.
3. Finding due cards on that database: `Store.due_cards` (target: under 50 ms) and the whole
   `QuizSession(...)` construction that `dlprep quiz` does before its first card; plus, for
   information, the first quiz prompt against that database.

Each figure is the median (and min) of --repeat runs. Results go to --out as
study_loop.json and study_loop.md; the table is printed on stdout, progress on stderr.

    python benchmarks/study_loop.py                      # 100k cards, 1M reviews, 7 runs
    python benchmarks/study_loop.py --cards 10000 --reviews 100000 --repeat 3   # quicker
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import os
import platform
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import yaml

from dlprep.bank import Bank
from dlprep.config import Settings
from dlprep.progress import build_progress
from dlprep.scheduler import next_study_day_start
from dlprep.session import LEARN_AHEAD, QuizSession
from dlprep.store import Store, _card_from_json, _card_json

try:  # the plain dataclass the quiz path uses, where dlprep has one
    from dlprep.questions import Question
except ImportError:  # the pydantic model of the bank schema
    from dlprep.schema import Question  # type: ignore[no-redef]

UTC = timezone.utc
TS_FORMAT = "%Y-%m-%dT%H:%M:%S.%f+00:00"  # store._ts: fixed width, so text order is time order
PROMPT_MARK = b":h help)"  # in every answer prompt (render.answer_prompt)
BASELINE_CODE = "import typer, rich, pydantic, yaml"
SEED = 20240601
ANSWER_TEXT = (  # about 250 characters, as a short real answer
    "It changes the optimisation landscape in a predictable way. A good answer names the "
    "mechanism, gives the evidence for it and says where it stops holding: which assumptions "
    "break, at what scale, and what practitioners do instead when they do."
)
TOPICS = 20

MINUTE, DAY = 60.0, 86400.0
HISTORY = 730 * DAY  # reviews spread over about two years, ending now
NEW, LEARNING, REVIEW, RELEARNING = 0, 1, 2, 3
AGAIN, HARD, GOOD, EASY = 1, 2, 3, 4
RATINGS, RATING_WEIGHTS = (AGAIN, HARD, GOOD, EASY), (0.10, 0.10, 0.70, 0.10)
INITIAL_STABILITY = {AGAIN: 0.5, HARD: 1.3, GOOD: 2.3, EASY: 8.3}  # days, like FSRS defaults
INITIAL_DIFFICULTY = {AGAIN: 7.0, HARD: 6.0, GOOD: 5.0, EASY: 3.0}
STABILITY_GROWTH = {HARD: (1.1, 1.4), GOOD: (1.6, 2.6), EASY: (2.5, 4.0)}
DIFFICULTY_STEP = {AGAIN: 1.2, HARD: 0.5, GOOD: 0.0, EASY: -0.6}
LEFT_IN_LEARNING = 0.01  # share of cards whose last answer was Again (a session left mid-way)
OVERDUE = 0.01  # share of review cards not reviewed when due (up to a week late)
LEECH_THRESHOLD = Settings().leech_threshold  # lapses at which dlprep suspends a card

TARGET_RATIO = 1.5
TARGET_STATS_S = 1.0
TARGET_DUE_S = 0.050


# -- timing ----------------------------------------------------------------------------------


@dataclass
class Result:
    key: str
    label: str
    runs_s: list[float]
    target_s: float | None = None  # pass when the median is at most this
    note: str = ""
    median_s: float = field(init=False)
    min_s: float = field(init=False)

    def __post_init__(self) -> None:
        self.median_s = statistics.median(self.runs_s)
        self.min_s = min(self.runs_s)

    @property
    def passed(self) -> bool | None:
        return None if self.target_s is None else self.median_s <= self.target_s


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def time_call(fn: Callable[[], object], repeat: int) -> list[float]:
    """Wall time of `fn()` `repeat` times, after one untimed warm-up call."""
    fn()
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return runs


def cli_env(home: Path, bank: Path | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DLPREP_HOME", "DLPREP_BANK")}
    env["DLPREP_HOME"] = str(home)
    if bank is not None:
        env["DLPREP_BANK"] = str(bank)
    return env


def run_process(args: list[str], env: dict[str, str], timeout: float = 600) -> float:
    """Wall time of a whole process (it must succeed)."""
    start = time.perf_counter()
    done = subprocess.run(args, env=env, capture_output=True, timeout=timeout)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{args} exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    return elapsed


def time_to_prompt(env: dict[str, str], timeout: float = 600) -> float:
    """Seconds from starting `dlprep quiz` until its first answer prompt is on stdout.

    stdout is read unbuffered with os.read, so the clock stops as soon as the prompt's
    bytes arrive; then stdin is closed (end of input) and the quiz must exit cleanly.
    """
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "dlprep", "quiz"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            env=env,
            bufsize=0,
        )
        killer = threading.Timer(timeout, proc.kill)  # portable: no select() on pipes
        killer.start()
        try:
            seen = b""
            while PROMPT_MARK not in seen:
                chunk = os.read(proc.stdout.fileno(), 65536)
                if not chunk:
                    break
                seen = seen[-len(PROMPT_MARK) :] + chunk
            elapsed = time.perf_counter() - start
            proc.stdin.close()
            proc.stdout.read()
            code = proc.wait()
        finally:
            killer.cancel()
            proc.stdout.close()
        if PROMPT_MARK not in seen or code != 0:
            err.seek(0)
            raise RuntimeError(
                f"dlprep quiz showed no prompt or failed (exit {code}): {err.read().decode()}"
            )
    return elapsed


# -- 1. time to the first quiz prompt ---------------------------------------------------------


def bench_first_prompt(home: Path, repeat: int) -> tuple[Result, Result]:
    """Baseline and quiz runs interleaved, so that machine drift affects both alike."""
    env = cli_env(home)
    time_to_prompt(env)  # untimed: builds the bank cache and the progress database
    run_process([sys.executable, "-c", BASELINE_CODE], env)
    baseline, quiz = [], []
    for _ in range(repeat):
        baseline.append(run_process([sys.executable, "-c", BASELINE_CODE], env))
        quiz.append(time_to_prompt(env))
    return (
        Result("baseline", f'Baseline: `python -c "{BASELINE_CODE}"`', baseline),
        Result("quiz_first_prompt", "`dlprep quiz`: first prompt (built-in bank, empty DB)", quiz),
    )


# -- 2. a synthetic history ------------------------------------------------------------------


def question_ids(cards: int) -> list[str]:
    return [f"syn-{i:06d}" for i in range(cards)]


def topic_of(index: int, cards: int) -> int:
    """Questions are split into TOPICS contiguous blocks, as in one file per topic."""
    return index * TOPICS // cards


def question_data(index: int, qid: str) -> dict:
    return {
        "id": qid,
        "prompt": f"Synthetic question {index}: why does technique {index % 997} help "
        f"when training model family {index % 31}?",
        "answer": ANSWER_TEXT + f" (question {index})",
        "key_points": [f"the mechanism behind technique {index % 997}", f"evidence {index}"],
    }


def build_bank(cards: int) -> tuple[Bank, dict[int, list[dict]]]:
    """The synthetic bank as models (for in-process timing) and as per-topic YAML data."""
    per_topic: dict[int, list[dict]] = {t: [] for t in range(TOPICS)}
    questions = []
    for index, qid in enumerate(question_ids(cards)):
        data = question_data(index, qid)
        topic = topic_of(index, cards)
        per_topic[topic].append(data)
        fields = {**data, "key_points": tuple(data["key_points"])}
        questions.append(Question(topic=topic_slug(topic), **fields))
    topics = {topic_slug(t): topic_title(t) for t in range(TOPICS)}
    return Bank(tuple(questions), topics), per_topic


def topic_slug(topic: int) -> str:
    return f"synthetic-{topic:02d}"


def topic_title(topic: int) -> str:
    return f"Synthetic topic {topic}"


def write_bank_yaml(per_topic: dict[int, list[dict]], folder: Path) -> int:
    """One topic file per topic, in the content/*.yaml format; returns the bytes written."""
    folder.mkdir(parents=True, exist_ok=True)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    size = 0
    for topic, questions in per_topic.items():
        data = {"topic": topic_slug(topic), "title": topic_title(topic), "questions": questions}
        text = yaml.dump(data, Dumper=dumper, sort_keys=False, allow_unicode=True, width=100)
        path = folder / f"{topic_slug(topic)}.yaml"
        path.write_text(text, encoding="utf-8")
        size += len(text)
    return size


def reviews_per_card(cards: int, reviews: int, rng: random.Random) -> list[int]:
    """How many answers each card has had (at least two where there are enough reviews)."""
    base = 2 if reviews >= 2 * cards else 1
    weights = list(itertools.accumulate(rng.lognormvariate(0, 0.8) for _ in range(cards)))
    extra = Counter(rng.choices(range(cards), cum_weights=weights, k=reviews - base * cards))
    return [base + extra[i] for i in range(cards)]


def transition(state: int, step: int | None, rating: int) -> tuple[int, int | None, float | None]:
    """(state, step, seconds to due) after an answer, FSRS-like; None: due in `stability` days.

    Learning steps 1m and 10m, relearning step 10m, as the fsrs package's defaults.
    """
    if rating == AGAIN:
        if state in (REVIEW, RELEARNING):
            return RELEARNING, 0, 10 * MINUTE
        return LEARNING, 0, 1 * MINUTE
    if state in (NEW, LEARNING):
        step = step or 0
        if rating == EASY or (rating == GOOD and step >= 1):
            return REVIEW, None, None
        if rating == GOOD:
            return LEARNING, 1, 10 * MINUTE
        return LEARNING, step, (6 if step == 0 else 10) * MINUTE
    if state == RELEARNING and rating == HARD:
        return RELEARNING, 0, 10 * MINUTE
    return REVIEW, None, None


def final_rating(state: int, step: int | None, rng: random.Random) -> int:
    """A card's last answer: mostly one that leaves it in review, like a finished session."""
    if rng.random() < LEFT_IN_LEARNING:
        return AGAIN
    if state in (NEW, LEARNING):
        return GOOD if step == 1 else EASY
    if state == RELEARNING:
        return GOOD
    return rng.choices((HARD, GOOD, EASY), weights=(0.1, 0.8, 0.1))[0]


@dataclass
class Answer:
    rating: int
    state_before: int
    step_before: int | None
    state_after: int
    step_after: int | None
    stability: float
    difficulty: float
    interval_s: float  # from this answer until the card is due


def simulate_answers(count: int, rng: random.Random) -> list[Answer]:
    """One card's answers, oldest first: states follow the ratings, stability grows on success."""
    answers: list[Answer] = []
    state, step, stability, difficulty = NEW, None, 0.0, 0.0
    for k in range(count):
        last = k == count - 1
        rating = final_rating(state, step, rng) if last else rng.choices(RATINGS, RATING_WEIGHTS)[0]
        new_state, new_step, interval = transition(state, step, rating)
        if state == NEW:
            stability = INITIAL_STABILITY[rating]
            difficulty = INITIAL_DIFFICULTY[rating] + rng.uniform(-1, 1)
        else:
            if rating == AGAIN:
                stability *= 0.25 if state == REVIEW else 0.8
            else:
                stability *= rng.uniform(*STABILITY_GROWTH[rating])
            difficulty += DIFFICULTY_STEP[rating]
        stability = min(400.0, max(0.5, stability))
        difficulty = min(10.0, max(1.0, difficulty))
        answers.append(
            Answer(
                rating,
                state,
                step,
                new_state,
                new_step,
                round(stability, 4),
                round(difficulty, 4),
                stability * DAY if interval is None else interval,
            )
        )
        state, step = new_state, new_step
    return answers


def answer_times(answers: list[Answer], now: float, rng: random.Random) -> list[float]:
    """When each answer was given (epoch seconds), working back from the last one.

    A card in review was last answered within its interval (a few are up to a week overdue),
    so its due date falls between a week ago and a year ahead; a card left in (re)learning
    was last answered in the past three days. Earlier answers came a little after they fell
    due; a history longer than two years is squeezed into them.
    """
    final = answers[-1]
    if final.state_after != REVIEW:
        elapsed = rng.uniform(MINUTE, 3 * DAY)
    elif rng.random() < OVERDUE:
        elapsed = final.interval_s + rng.uniform(0, 7 * DAY)
    else:
        elapsed = rng.uniform(max(MINUTE, final.interval_s - 365 * DAY), final.interval_s)
    times = [now - min(elapsed, HISTORY)]
    for answer in reversed(answers[:-1]):
        times.append(times[-1] - answer.interval_s * rng.uniform(0.95, 1.4))
    times.reverse()
    earliest = now - HISTORY
    if times[0] < earliest:
        last = times[-1]
        start = earliest + rng.uniform(0, 0.1) * (last - earliest)
        scale = (last - start) / (last - times[0])
        times = [last - (last - t) * scale for t in times]
    return times


def ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime(TS_FORMAT)


def card_json(
    qid: str,
    state: int,
    step: int | None,
    stability: float | None,
    difficulty: float | None,
    due: str | None,
    last_review: str | None,
    reps: int,
    lapses: int,
) -> str:
    """The `card_before` snapshot, as store._card_json writes it (checked in generate())."""
    return json.dumps(
        {
            "question_id": qid,
            "state": state,
            "step": step,
            "stability": stability,
            "difficulty": difficulty,
            "due": due,
            "last_review": last_review,
            "reps": reps,
            "lapses": lapses,
            "suspended": False,
            "leech": False,
            "buried_until": None,
        },
        separators=(",", ":"),
    )


def card_history(qid: str, count: int, now: float, rng: random.Random) -> tuple[tuple, list]:
    """One card's row for `cards` and its rows for `reviews` (reviewed_at first)."""
    answers = simulate_answers(count, rng)
    times = answer_times(answers, now, rng)
    rows = []
    due = last = None
    stability = difficulty = None
    reps = lapses = 0
    for answer, moment in zip(answers, times, strict=True):
        at, due_after = ts(moment), ts(moment + answer.interval_s)
        before = card_json(
            qid,
            answer.state_before,
            answer.step_before,
            stability,
            difficulty,
            due,
            last,
            reps,
            lapses,
        )
        rows.append(
            (
                at,
                qid,
                answer.rating,
                rng.randint(2_000, 90_000),
                answer.state_before,
                answer.state_after,
                answer.stability,
                answer.difficulty,
                due_after,
                before,
            )
        )
        lapses += answer.state_before == REVIEW and answer.rating == AGAIN
        reps += 1
        due, last = due_after, at
        stability, difficulty = answer.stability, answer.difficulty
    final = answers[-1]
    leech = int(lapses >= LEECH_THRESHOLD)
    card = (qid, final.state_after, final.step_after, stability, difficulty, due, last)
    return card + (reps, lapses, leech, leech, None), rows


def generate(db_path: Path, cards: int, reviews: int, now: datetime) -> dict:
    """Create the database with Store (migrations), then bulk-insert cards and reviews."""
    Store(db_path).close()
    rng = random.Random(SEED)
    counts = reviews_per_card(cards, reviews, rng)
    card_rows, review_rows = [], []
    for qid, count in zip(question_ids(cards), counts, strict=True):
        card, rows = card_history(qid, count, now.timestamp(), rng)
        card_rows.append(card)
        review_rows.extend(rows)
    review_rows.sort(key=lambda row: row[0])  # ids in time order, as dlprep appends them
    sample = review_rows[-1][-1]
    assert _card_json(_card_from_json(sample)) == sample, "card_before differs from the store's"
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO cards (question_id, state, step, stability, difficulty, due, "
            "last_review, reps, lapses, suspended, leech, buried_until) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            card_rows,
        )
        db.executemany(
            "INSERT INTO reviews (reviewed_at, question_id, rating, duration_ms, state_before, "
            "state_after, stability_after, difficulty_after, due_after, card_before) "
            "VALUES (?,?,?,?,?,?,?,?,?,?)",
            review_rows,
        )
        db.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()
    return describe_data(card_rows, review_rows, now)


def describe_data(card_rows: list[tuple], review_rows: list[tuple], now: datetime) -> dict:
    now_s, fortnight = ts(now.timestamp()), ts((now - timedelta(days=14)).timestamp())
    times = [row[0] for row in review_rows]
    return {
        "cards": len(card_rows),
        "reviews": len(review_rows),
        "cards_by_state": dict(sorted(Counter(row[1] for row in card_rows).items())),
        "ratings": dict(sorted(Counter(row[2] for row in review_rows).items())),
        "cards_due_now": sum(row[5] <= now_s and not row[9] for row in card_rows),
        "reviews_last_14_days": len(times) - bisect.bisect_left(times, fortnight),
        "first_review": times[0] if times else None,
        "last_review": times[-1] if times else None,
    }


# -- 2. and 3. timing on the synthetic history -----------------------------------------------


def bench_in_process(db_path: Path, bank: Bank, now: datetime, repeat: int) -> list[Result]:
    settings = Settings()
    next_day = next_study_day_start(now, settings.day_starts_at, settings.zone())

    def fresh_bank() -> Bank:  # by_id is a cached property: each process builds it once
        return Bank(bank.questions, bank.topics)

    with Store(db_path) as store:
        due = store.due_cards(now + LEARN_AHEAD, next_day, now)
        return [
            Result(
                "build_progress",
                "`progress.build_progress` (in-process)",
                time_call(lambda: build_progress(store, fresh_bank(), settings, now), repeat),
                TARGET_STATS_S,
            ),
            Result(
                "due_cards",
                f"`Store.due_cards` ({len(due):,} due)",
                time_call(lambda: store.due_cards(now + LEARN_AHEAD, next_day, now), repeat),
                TARGET_DUE_S,
            ),
            Result(
                "quiz_session",
                "`QuizSession(...)` construction (in-process)",
                time_call(
                    lambda: QuizSession(
                        store, fresh_bank(), settings, now, rng=random.Random(SEED)
                    ),
                    repeat,
                ),
            ),
        ]


def bench_cli(home: Path, bank_dir: Path, repeat: int, expected_reviews: int) -> list[Result]:
    env = cli_env(home, bank_dir)
    stats = [sys.executable, "-m", "dlprep", "stats", "--json"]
    done = subprocess.run(stats, env=env, capture_output=True, timeout=3600)  # builds the cache
    if done.returncode != 0:
        raise RuntimeError(f"dlprep stats failed: {done.stderr.decode()[-2000:]}")
    reported = json.loads(done.stdout)["total_reviews"]
    if reported != expected_reviews:
        raise RuntimeError(f"dlprep stats saw {reported} reviews, not {expected_reviews}")
    stats_runs = [run_process(stats, env) for _ in range(repeat)]
    time_to_prompt(env)
    prompt_runs = [time_to_prompt(env) for _ in range(repeat)]
    return [
        Result("stats_cli", "`dlprep stats --json` (end to end)", stats_runs, TARGET_STATS_S),
        Result(
            "quiz_first_prompt_large",
            "`dlprep quiz`: first prompt with this history (information)",
            prompt_runs,
        ),
    ]


# -- report ----------------------------------------------------------------------------------


def source_state() -> str:
    """The commit measured, and whether dlprep/ had uncommitted changes."""
    root = Path(__file__).resolve().parent.parent
    try:
        git = ["git", "-C", str(root)]
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True)
        dirty = subprocess.run([*git, "status", "--porcelain", "dlprep"], capture_output=True)
    except OSError:
        return "unknown"
    if commit.returncode != 0:
        return "unknown"
    return commit.stdout.decode().strip() + (" + uncommitted changes" if dirty.stdout else "")


def machine() -> dict:
    return {
        "dlprep": source_state(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
    }


def fmt_s(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:,.2f} s"
    ms = seconds * 1000
    return f"{ms:.0f} ms" if ms >= 100 else f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


def verdict(passed: bool | None) -> str:
    return "—" if passed is None else ("pass" if passed else "**FAIL**")


def markdown(info: dict, results: list[Result], ratio: dict) -> str:
    data, params = info["data"], info["parameters"]
    lines = [
        "## dlprep study-loop benchmark",
        "",
        "Machine: {platform}, {cpus} CPUs ({processor}), {python}, SQLite {sqlite}; "
        "dlprep {dlprep}".format(**info["machine"]),
        f"History: {data['cards']:,} cards, {data['reviews']:,} reviews "
        f"({data['first_review'][:10]} to {data['last_review'][:10]}), "
        f"{data['cards_due_now']:,} cards due now, "
        f"{data['reviews_last_14_days']:,} reviews in the last 14 days; "
        f"bank {params['cards']:,} synthetic questions in {TOPICS} topics.",
        f"Each figure: median and min of {params['repeat']} runs.",
        "",
        "| Measurement | Median | Min | Target | Result |",
        "|---|--:|--:|--:|---|",
    ]
    by_key = {r.key: r for r in results}
    for result in results:
        target = "—" if result.target_s is None else f"≤ {fmt_s(result.target_s)}"
        lines.append(
            f"| {result.label} | {fmt_s(result.median_s)} | {fmt_s(result.min_s)} "
            f"| {target} | {verdict(result.passed)} |"
        )
        if result.key == "quiz_first_prompt" and "baseline" in by_key:
            lines.append(
                f"| Ratio first prompt / baseline | {ratio['median']:.2f}× | {ratio['min']:.2f}× "
                f"| ≤ {TARGET_RATIO}× | {verdict(ratio['passed'])} |"
            )
    return "\n".join(lines) + "\n"


def save(out: Path, info: dict, results: list[Result], ratio: dict, table: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    payload = {
        **info,
        "results": [{**asdict(r), "passed": r.passed} for r in results],
        "ratio_first_prompt_to_baseline": ratio,
    }
    (out / "study_loop.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    (out / "study_loop.md").write_text(table, encoding="utf-8")


@dataclass
class Workspace:
    root: Path

    @property
    def quiz_home(self) -> Path:
        return self.root / "quiz-home"

    @property
    def large_home(self) -> Path:
        return self.root / "large-home"

    @property
    def bank_dir(self) -> Path:
        return self.root / "bank"


@contextmanager
def workspace(keep: bool) -> Iterator[Workspace]:
    if keep:
        root = Path(tempfile.mkdtemp(prefix="dlprep-bench-"))
        log(f"keeping the data in {root}")
        yield Workspace(root)
        return
    with tempfile.TemporaryDirectory(prefix="dlprep-bench-") as root:
        yield Workspace(Path(root))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cards", type=int, default=100_000, help="cards (and questions)")
    parser.add_argument("--reviews", type=int, default=1_000_000, help="reviews in the log")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per figure")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "out")
    parser.add_argument("--keep", action="store_true", help="keep the generated data")
    args = parser.parse_args(argv)
    if args.cards < TOPICS or args.reviews < args.cards or args.repeat < 1:
        parser.error(f"need --cards >= {TOPICS}, --reviews >= --cards and --repeat >= 1")
    return args


def compile_package() -> None:
    """Byte-compile dlprep's modules, as `pip install` does for a regular install.

    In an editable checkout with PYTHONDONTWRITEBYTECODE set (as on our dev and CI
    machines), every start would otherwise recompile dlprep from source while typer, rich
    and pydantic load precompiled bytecode: that compares a dev checkout with installed
    packages, not the tool a user runs (measured here: +25-40 ms on the first prompt).
    """
    import compileall

    import dlprep

    compileall.compile_dir(Path(dlprep.__file__).parent, quiet=1)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    compile_package()
    info = {
        "machine": machine(),
        "parameters": {"cards": args.cards, "reviews": args.reviews, "repeat": args.repeat},
    }
    timings: dict[str, float] = {}
    with workspace(args.keep) as ws:
        log("1/3 time to the first quiz prompt")
        results = list(bench_first_prompt(ws.quiz_home, args.repeat))

        log(f"2/3 generating {args.cards:,} cards and {args.reviews:,} reviews")
        now = datetime.now(UTC)
        start = time.perf_counter()
        info["data"] = generate(ws.large_home / "progress.db", args.cards, args.reviews, now)
        timings["generate_db_s"] = time.perf_counter() - start
        start = time.perf_counter()
        bank, per_topic = build_bank(args.cards)
        yaml_bytes = write_bank_yaml(per_topic, ws.bank_dir)
        timings["generate_bank_s"] = time.perf_counter() - start
        info["data"]["bank_yaml_bytes"] = yaml_bytes
        log(f"generated in {sum(timings.values()):.1f} s; timing in-process")
        results += bench_in_process(ws.large_home / "progress.db", bank, now, args.repeat)

        log(f"3/3 the CLI on that history (first run parses {yaml_bytes / 1e6:.0f} MB of YAML)")
        start = time.perf_counter()
        results += bench_cli(ws.large_home, ws.bank_dir, args.repeat, args.reviews)
        timings["cli_s"] = time.perf_counter() - start
    info["setup_s"] = {k: round(v, 1) for k, v in timings.items()}

    by_key = {r.key: r for r in results}
    quiz, baseline = by_key["quiz_first_prompt"], by_key["baseline"]
    ratio = {
        "median": quiz.median_s / baseline.median_s,
        "min": quiz.min_s / baseline.min_s,
        "target": TARGET_RATIO,
    }
    ratio["passed"] = ratio["median"] <= TARGET_RATIO
    order = [
        "baseline",
        "quiz_first_prompt",
        "build_progress",
        "stats_cli",
        "due_cards",
        "quiz_session",
        "quiz_first_prompt_large",
    ]
    results.sort(key=lambda r: order.index(r.key))
    table = markdown(info, results, ratio)
    save(args.out, info, results, ratio, table)
    print(table)
    log(f"wrote {args.out / 'study_loop.md'} and {args.out / 'study_loop.json'}")


if __name__ == "__main__":
    main()
