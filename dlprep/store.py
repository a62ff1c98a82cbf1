"""All of dlprep's SQL: progress in one SQLite file (WAL, numbered migrations).

Every answer is one transaction (BEGIN IMMEDIATE): the card is re-read inside it, the
transition computed from what is stored *now*, the review appended and the card written,
then committed. A crash or Ctrl-C therefore loses nothing already answered, and two dlprep
processes never overwrite each other's reviews.
"""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple

from dlprep.config import Settings
from dlprep.errors import StoreError, UsageError
from dlprep.migrations import MIGRATIONS
from dlprep.scheduler import NEW, CardState, ReviewResult, Scheduler

UTC = timezone.utc
_CARD_COLUMNS = (
    "question_id, state, step, stability, difficulty, due, last_review, "
    "reps, lapses, suspended, leech, buried_until"
)
# What a backup holds: every column of every table of progress, in a fixed order.
BACKUP_TABLES: dict[str, tuple[str, ...]] = {
    "cards": tuple(_CARD_COLUMNS.split(", ")),
    "reviews": (
        "id",
        "question_id",
        "rating",
        "reviewed_at",
        "duration_ms",
        "state_before",
        "state_after",
        "stability_after",
        "difficulty_after",
        "due_after",
        "card_before",
        "response",
        "auto_correct",
        "draw",
        "elapsed_days",
        "recall_before",
    ),
    "undone": ("review_id", "undone_at"),
    "settings": ("key", "value"),
}


@functools.cache
def _default_scheduler() -> Scheduler:
    """Built on first use: only migration 2's backfill needs it, not every start."""
    return Scheduler(Settings(), enable_fuzzing=False)


def _backfill_recall(days: int, stability: float) -> float:
    return _default_scheduler().recall_after(stability, days)


_NOT_UNDONE = "NOT EXISTS (SELECT 1 FROM undone u WHERE u.review_id = r.id)"


def _ts(moment: datetime | None) -> str | None:
    """Fixed-width UTC text, so that SQL string comparison orders by time."""
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _card(row: tuple) -> CardState:
    qid, state, step, stab, diff, due, last, reps, lapses, susp, leech, buried = row
    return CardState(
        qid,
        state,
        step,
        stab,
        diff,
        _dt(due),
        _dt(last),
        reps,
        lapses,
        bool(susp),
        bool(leech),
        _dt(buried),
    )


def _card_json(card: CardState) -> str:
    data = {k: (_ts(v) if isinstance(v, datetime) else v) for k, v in asdict(card).items()}
    return json.dumps(data, separators=(",", ":"))


def _card_from_json(text: str) -> CardState:
    data = json.loads(text)
    for key in ("due", "last_review", "buried_until"):
        data[key] = _dt(data[key])
    return CardState(**data)


@dataclass(frozen=True)
class Review:
    id: int
    question_id: str
    rating: int
    reviewed_at: datetime
    duration_ms: int | None
    state_before: int
    state_after: int
    response: str | None
    auto_correct: bool | None
    undone: bool


class CardSummary(NamedTuple):
    """What `stats` needs of a card, with the time comparisons already made in SQL."""

    question_id: str
    state: int
    stability: float | None
    elapsed_days: int | None  # whole days since the last review, as fsrs counts them
    reps: int
    lapses: int
    # SQLite's booleans: 0 or 1 (NULL for due_* of a card never scheduled)
    suspended: int
    leech: int
    available: int  # neither suspended nor buried now
    due_now: int | None
    due_today: int | None


@dataclass(frozen=True)
class DayCounts:
    new: int  # cards seen for the first time
    reviews: int  # reviews of cards in the Review state (what the daily review limit counts)
    total: int  # every answer


_INSERT_REVIEW = (
    "INSERT INTO reviews (question_id, rating, reviewed_at, duration_ms, state_before, "
    "state_after, stability_after, difficulty_after, due_after, card_before, response, "
    "auto_correct, draw, elapsed_days, recall_before) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)


def _review_row(
    question_id: str,
    result: ReviewResult,
    when: datetime,
    duration_ms: int | None,
    response: str | None = None,
    auto_correct: bool | None = None,
    draw: dict | None = None,
) -> tuple:
    """The values of one row of the review log, in _INSERT_REVIEW's order."""
    return (
        question_id,
        int(result.rating),
        _ts(when),
        duration_ms,
        result.before.state,
        result.after.state,
        result.after.stability,
        result.after.difficulty,
        _ts(result.after.due),
        _card_json(result.before),
        response,
        None if auto_correct is None else int(auto_correct),
        json.dumps(draw) if draw is not None else None,
        result.elapsed_days,
        result.recall_before,
    )


def _db_errors(method: Callable) -> Callable:
    """Turn SQLite failures into one StoreError line that names the database file."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise StoreError(f"progress database {self.path}: {exc}") from None

    return wrapper


class Store:
    """The progress database. Open with `Store(path)`; use as a context manager to close."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open progress database {self.path}: {exc}") from None
        try:
            self._setup()
        except sqlite3.Error as exc:
            self._db.close()
            hint = (
                " (it is not a dlprep database, or it is damaged)"
                if "not a database" in str(exc)
                else ""
            )
            raise StoreError(f"cannot use progress database {self.path}: {exc}{hint}") from None

    def _setup(self) -> None:
        # Migration 2 backfills the recall FSRS predicted at each past review (its default
        # forgetting curve: those reviews were scheduled with it).
        self._db.create_function(
            "dlprep_recall",
            2,
            _backfill_recall,
            deterministic=True,
        )
        self._db.execute("PRAGMA busy_timeout = 30000")
        self._db.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed answer survives a power cut too, not only a crash.
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("PRAGMA foreign_keys = ON")
        self._migrate()

    def _migrate(self) -> None:
        with self._tx():
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS migrations "
                "(id INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
            applied = {row[0] for row in self._db.execute("SELECT id FROM migrations")}
            newest_known = MIGRATIONS[-1][0]
            if applied and max(applied) > newest_known:
                raise StoreError(
                    f"progress database {self.path} was written by a newer dlprep "
                    f"(migration {max(applied)} > {newest_known}); upgrade dlprep"
                )
            for number, name, sql in MIGRATIONS:
                if number in applied:
                    continue
                for statement in _statements(sql):
                    self._db.execute(statement)
                self._db.execute(
                    "INSERT INTO migrations (id, name, applied_at) VALUES (?, ?, ?)",
                    (number, name, _ts(datetime.now(UTC))),
                )

    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One write transaction; IMMEDIATE takes the write lock up front, so no lost updates."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- cards -------------------------------------------------------------------------------

    def _card_or_new(self, question_id: str) -> CardState:
        row = self._db.execute(
            f"SELECT {_CARD_COLUMNS} FROM cards WHERE question_id = ?", (question_id,)
        ).fetchone()
        return _card(row) if row else CardState(question_id)

    def _write_card(self, card: CardState) -> None:
        self._db.execute(
            f"INSERT OR REPLACE INTO cards ({_CARD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                card.question_id,
                card.state,
                card.step,
                card.stability,
                card.difficulty,
                _ts(card.due),
                _ts(card.last_review),
                card.reps,
                card.lapses,
                int(card.suspended),
                int(card.leech),
                _ts(card.buried_until),
            ),
        )

    @_db_errors
    def card(self, question_id: str) -> CardState:
        """The stored state of a question (a fresh new card if it was never touched)."""
        return self._card_or_new(question_id)

    @_db_errors
    def cards(self) -> dict[str, CardState]:
        """Every card with stored state, keyed by question id."""
        rows = self._db.execute(f"SELECT {_CARD_COLUMNS} FROM cards")
        return {row[0]: _card(row) for row in rows}

    @_db_errors
    def card_summaries(self, now: datetime, day_end: datetime) -> list[CardSummary]:
        """Every stored card, cheaply: no CardState; SQLite computes the days since the last
        review, availability and due-ness, so rows become CardSummary tuples as they are."""
        rows = self._db.execute(
            # julianday differences are exact to the millisecond: the whole days match
            # Python's timedelta.days but at the very instant a day completes.
            "SELECT question_id, state, stability, "
            "  MAX(0, CAST(julianday(:now) - julianday(last_review) AS INTEGER)), "
            "  reps, lapses, suspended, leech, "
            "  suspended = 0 AND (buried_until IS NULL OR buried_until <= :now) AS available, "
            "  state > 0 AND suspended = 0 AND (buried_until IS NULL OR buried_until <= :now) "
            "    AND due <= :now AS due_now, "
            "  state > 0 AND suspended = 0 AND (buried_until IS NULL OR buried_until <= :now) "
            "    AND due <= :day_end AS due_today "
            "FROM cards",
            {"now": _ts(now), "day_end": _ts(day_end)},
        )
        return list(map(CardSummary._make, rows))

    @_db_errors
    def not_new_or_unavailable(self, now: datetime) -> set[str]:
        """Ids that cannot be shown as new cards now: studied, suspended or buried."""
        rows = self._db.execute(
            "SELECT question_id FROM cards WHERE state > 0 OR suspended = 1 OR buried_until > ?",
            (_ts(now),),
        )
        return {qid for (qid,) in rows}

    @_db_errors
    def next_due(self, question_ids: set[str], now: datetime) -> datetime | None:
        """When the first of these (studied, available) cards comes due."""
        rows = self._db.execute(
            "SELECT question_id, due FROM cards WHERE state > 0 AND suspended = 0 "
            "AND (buried_until IS NULL OR buried_until <= ?) ORDER BY due",
            (_ts(now),),
        )
        return next((_dt(due) for qid, due in rows if qid in question_ids), None)

    @_db_errors
    def due_cards(
        self, learning_until: datetime, review_until: datetime, now: datetime
    ) -> list[CardState]:
        """Unsuspended, unburied cards that have been studied and are due, oldest due first.

        Learning and relearning cards count as due up to `learning_until` (their steps are
        minutes), cards in review up to `review_until` (the end of the study day).
        """
        rows = self._db.execute(
            f"SELECT {_CARD_COLUMNS} FROM cards WHERE state > 0 AND due <= ? AND suspended = 0 "
            "AND (buried_until IS NULL OR buried_until <= ?) "
            "AND (state = 2 OR due <= ?) ORDER BY due",
            (_ts(max(learning_until, review_until)), _ts(now), _ts(learning_until)),
        )
        return [_card(row) for row in rows]

    @_db_errors
    def apply_review(
        self,
        question_id: str,
        transition: Callable[[CardState], ReviewResult],
        now: datetime,
        *,
        duration_ms: int | None = None,
        response: str | None = None,
        auto_correct: bool | None = None,
        draw: dict | None = None,
    ) -> tuple[int, ReviewResult]:
        """Review a card: read it, compute `transition(card)`, append the log, write the card."""
        with self._tx():
            result = transition(self._card_or_new(question_id))
            row = _review_row(question_id, result, now, duration_ms, response, auto_correct, draw)
            cursor = self._db.execute(_INSERT_REVIEW, row)
            self._write_card(result.after)
        return cursor.lastrowid, result

    @_db_errors
    def append_history(
        self, reviews: Iterable[tuple[str, ReviewResult, datetime, int | None]]
    ) -> int:
        """Append many (question id, result, time, duration ms) reviews at once, in order,
        and leave each card in its last state: one transaction (a simulated or imported
        history; answers given in the quiz go through `apply_review`)."""
        latest: dict[str, CardState] = {}
        rows = []
        for qid, result, when, duration_ms in reviews:
            latest[qid] = result.after
            rows.append(_review_row(qid, result, when, duration_ms))
        with self._tx():
            self._db.executemany(_INSERT_REVIEW, rows)
            for card in latest.values():
                self._write_card(card)
        return len(rows)

    @_db_errors
    def last_review(self) -> Review | None:
        """The most recent answer that has not been undone."""
        reviews = self._reviews(f"WHERE {_NOT_UNDONE} ORDER BY r.id DESC LIMIT 1", ())
        return reviews[0] if reviews else None

    @_db_errors
    def undo(self, review_id: int, now: datetime) -> CardState:
        """Undo one answer: restore the card as it was before it and mark the review undone.

        Only a card's latest answer can be undone (otherwise later answers would be lost).
        """
        with self._tx():
            row = self._db.execute(
                f"SELECT question_id, card_before FROM reviews r WHERE id = ? AND {_NOT_UNDONE}",
                (review_id,),
            ).fetchone()
            if row is None:
                raise StoreError(f"review {review_id} does not exist or was already undone")
            question_id, before = row
            latest = self._db.execute(
                f"SELECT MAX(id) FROM reviews r WHERE question_id = ? AND {_NOT_UNDONE}",
                (question_id,),
            ).fetchone()[0]
            if latest != review_id:
                raise StoreError(
                    f"{question_id} was answered again since (review {latest}); undo that first"
                )
            card = _card_from_json(before)
            if card.is_new and not card.suspended and card.buried_until is None:
                self._db.execute("DELETE FROM cards WHERE question_id = ?", (question_id,))
            else:
                self._write_card(card)
            self._db.execute(
                "INSERT INTO undone (review_id, undone_at) VALUES (?, ?)", (review_id, _ts(now))
            )
        return card

    @_db_errors
    def set_suspended(self, question_ids: Iterable[str], suspended: bool) -> None:
        with self._tx():
            for qid in question_ids:
                card = self._card_or_new(qid)
                self._write_card(replace(card, suspended=suspended))

    @_db_errors
    def bury(self, question_ids: Iterable[str], until: datetime | None) -> None:
        """Hide cards until `until` (the next study day); None unburies."""
        with self._tx():
            for qid in question_ids:
                self._write_card(replace(self._card_or_new(qid), buried_until=until))

    # -- the review log ----------------------------------------------------------------------

    def _reviews(self, where: str, params: tuple) -> list[Review]:
        rows = self._db.execute(
            "SELECT r.id, r.question_id, r.rating, r.reviewed_at, r.duration_ms, r.state_before, "
            "r.state_after, r.response, r.auto_correct, "
            "EXISTS (SELECT 1 FROM undone u WHERE u.review_id = r.id) "
            f"FROM reviews r {where}",
            params,
        )
        return [
            Review(
                i,
                q,
                rating,
                _dt(at),
                dur,
                sb,
                sa,
                resp,
                None if ok is None else bool(ok),
                bool(undone),
            )
            for i, q, rating, at, dur, sb, sa, resp, ok, undone in rows
        ]

    @_db_errors
    def history(self, question_id: str) -> list[Review]:
        """Every answer to a question, oldest first, undone ones included and marked."""
        return self._reviews("WHERE r.question_id = ? ORDER BY r.id", (question_id,))

    @_db_errors
    def counts_since(self, since: datetime) -> DayCounts:
        new, reviews, total = self._db.execute(
            "SELECT COALESCE(SUM(state_before = 0), 0), COALESCE(SUM(state_before = 2), 0), "
            f"COUNT(*) FROM reviews r WHERE reviewed_at >= ? AND {_NOT_UNDONE}",
            (_ts(since),),
        ).fetchone()
        return DayCounts(new, reviews, total)

    @_db_errors
    def review_count(self) -> int:
        return self._db.execute(
            "SELECT (SELECT COUNT(*) FROM reviews) - (SELECT COUNT(*) FROM undone)"
        ).fetchone()[0]

    @_db_errors
    def review_times_since(self, since: datetime) -> list[datetime]:
        """When each (not undone) answer since `since` was given, oldest first."""
        rows = self._db.execute(
            f"SELECT reviewed_at FROM reviews r WHERE reviewed_at >= ? AND {_NOT_UNDONE} "
            "ORDER BY reviewed_at",
            (_ts(since),),
        )
        return [datetime.fromisoformat(at) for (at,) in rows]

    @_db_errors
    def answer_log(self) -> list[tuple[str, int, datetime, int | None]]:
        """Every answer that was not undone, oldest first: (question id, rating, time, ms)."""
        rows = self._db.execute(
            f"SELECT question_id, rating, reviewed_at, duration_ms FROM reviews r "
            f"WHERE {_NOT_UNDONE} ORDER BY id"
        )
        return [(q, rating, datetime.fromisoformat(at), ms) for q, rating, at, ms in rows]

    @_db_errors
    def last_ratings(self) -> dict[str, int]:
        """Each question's most recent (not undone) rating."""
        rows = self._db.execute(
            "SELECT question_id, rating FROM reviews WHERE id IN ("
            f"SELECT MAX(id) FROM reviews r WHERE {_NOT_UNDONE} GROUP BY question_id)"
        )
        return dict(rows.fetchall())

    # -- statistics over the log (grouped in SQL: a million reviews stay fast) ---------------

    @_db_errors
    def answers_by_hour(self, since: datetime, key: int = 13) -> list[tuple[str, int]]:
        """Answers given since `since`, undone ones left out, counted per UTC hour: the first
        `key` characters of the time, 13 for "YYYY-MM-DDTHH" (16 adds the minutes, for time
        zones whose study day starts off the hour). Callers group them into study days."""
        counts = dict(
            self._db.execute(
                f"SELECT substr(reviewed_at, 1, {int(key)}) AS hour, COUNT(*) FROM reviews "
                "WHERE reviewed_at >= ? GROUP BY hour",
                (_ts(since),),
            ).fetchall()
        )
        for hour, n in self._db.execute(
            f"SELECT substr(r.reviewed_at, 1, {int(key)}) AS hour, COUNT(*) FROM undone u "
            "JOIN reviews r ON r.id = u.review_id WHERE r.reviewed_at >= ? GROUP BY hour",
            (_ts(since),),
        ):
            counts[hour] -= n
        return sorted((hour, n) for hour, n in counts.items() if n)

    @_db_errors
    def retention_by_hour(
        self, since: datetime, key: int = 13
    ) -> list[tuple[str, int, int, float]]:
        """Answers to cards in review since `since` with FSRS's prediction, undone ones left
        out, per UTC hour (as in `answers_by_hour`): (hour, answers, passed (not Again),
        summed predicted recall)."""
        return self._db.execute(
            f"SELECT substr(reviewed_at, 1, {int(key)}) AS hour, COUNT(*), SUM(rating > 1), "
            "SUM(recall_before) FROM reviews r WHERE reviewed_at >= ? AND state_before = 2 "
            f"AND recall_before IS NOT NULL AND {_NOT_UNDONE} GROUP BY hour",
            (_ts(since),),
        ).fetchall()

    @_db_errors
    def retention_by_interval(
        self, since: datetime, bucket_starts: Sequence[int]
    ) -> list[tuple[int, int, int, float]]:
        """The same answers grouped by the days since the card's previous review, into buckets
        starting at `bucket_starts` (ascending, the first 0): (bucket index, answers, passed,
        summed predicted recall)."""
        cases = " ".join(
            f"WHEN elapsed_days >= {int(start)} THEN {i}"
            for i, start in reversed(list(enumerate(bucket_starts)))
        )
        return self._db.execute(
            f"SELECT CASE {cases} END AS bucket, COUNT(*), SUM(rating > 1), SUM(recall_before) "
            "FROM reviews r WHERE reviewed_at >= ? AND state_before = 2 "
            f"AND recall_before IS NOT NULL AND {_NOT_UNDONE} GROUP BY bucket",
            (_ts(since),),
        ).fetchall()

    @_db_errors
    def due_by_hour(self, until: datetime, key: int = 13) -> list[tuple[str, int]]:
        """Studied, unsuspended cards due before `until`, per UTC hour of their due time."""
        return self._db.execute(
            f"SELECT substr(due, 1, {int(key)}) AS hour, COUNT(*) FROM cards "
            "WHERE state > 0 AND suspended = 0 AND due < ? GROUP BY hour",
            (_ts(until),),
        ).fetchall()

    # -- backup ------------------------------------------------------------------------------

    @_db_errors
    def dump(self) -> dict[str, Any]:
        """Every row of progress, as stored (text timestamps, JSON snapshots kept verbatim):
        what `dlprep export json` writes and `restore` reads back bit for bit."""
        tables = {}
        for table, columns in BACKUP_TABLES.items():
            order = "rowid" if table != "settings" else "key"
            rows = self._db.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")
            tables[table] = [dict(zip(columns, row, strict=True)) for row in rows]
        tables["schema"] = self._db.execute("SELECT MAX(id) FROM migrations").fetchone()[0]
        return tables

    @_db_errors
    def restore(self, tables: dict[str, list[dict[str, Any]]]) -> None:
        """Load rows written by `dump` into this (empty) database, all or nothing."""
        with self._tx():
            held = self._db.execute(
                "SELECT (SELECT COUNT(*) FROM cards) + (SELECT COUNT(*) FROM reviews) "
                "+ (SELECT COUNT(*) FROM settings)"
            ).fetchone()[0]
            if held:
                raise StoreError(
                    f"progress database {self.path} already holds progress; import needs an "
                    "empty one (set DLPREP_HOME to a new folder, or move the database aside)"
                )
            for table, columns in BACKUP_TABLES.items():
                marks = ", ".join("?" * len(columns))
                self._db.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",
                    [tuple(row[c] for c in columns) for row in tables[table]],
                )

    # -- settings ----------------------------------------------------------------------------

    @_db_errors
    def settings(self) -> Settings:
        stored = {k: json.loads(v) for k, v in self._db.execute("SELECT key, value FROM settings")}
        try:
            return Settings.from_dict(stored)
        except (ValueError, UsageError) as exc:
            raise StoreError(f"progress database {self.path}: invalid settings: {exc}") from None

    @_db_errors
    def save_settings(self, settings: Settings) -> None:
        defaults = Settings()
        with self._tx():
            for key, value in settings.to_dict().items():
                if value == defaults.to_dict()[key]:
                    self._db.execute("DELETE FROM settings WHERE key = ?", (key,))
                else:
                    self._db.execute(
                        "INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                        (key, json.dumps(value)),
                    )


def _statements(sql: str) -> list[str]:
    """Split a migration script into statements (sqlite3.complete_statement knows triggers)."""
    statements, current = [], ""
    for line in sql.splitlines(keepends=True):
        current += line
        if sqlite3.complete_statement(current):
            statements.append(current.strip())
            current = ""
    if current.strip():
        statements.append(current.strip())
    return [s for s in statements if s]


__all__ = ["DayCounts", "NEW", "Review", "Store"]
