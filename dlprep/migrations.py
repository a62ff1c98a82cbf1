"""Numbered, append-only schema migrations for the progress database.

Never edit a migration that has shipped: add a new one. `store.Store` applies the ones a
database lacks, in order, each in its own transaction, and records them in `migrations`.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (
        1,
        "cards, append-only review log, undo marks, settings",
        """
        CREATE TABLE cards (
            question_id  TEXT PRIMARY KEY,
            state        INTEGER NOT NULL DEFAULT 0,   -- 0 new, 1 learning, 2 review, 3 relearning
            step         INTEGER,
            stability    REAL,
            difficulty   REAL,
            due          TEXT,                         -- UTC, ISO 8601; NULL while new
            last_review  TEXT,
            reps         INTEGER NOT NULL DEFAULT 0,
            lapses       INTEGER NOT NULL DEFAULT 0,
            suspended    INTEGER NOT NULL DEFAULT 0,
            leech        INTEGER NOT NULL DEFAULT 0,
            buried_until TEXT
        );
        CREATE INDEX cards_due ON cards (due) WHERE state > 0;

        CREATE TABLE reviews (
            id           INTEGER PRIMARY KEY,
            question_id  TEXT NOT NULL,
            rating       INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 4),
            reviewed_at  TEXT NOT NULL,                -- UTC, ISO 8601
            duration_ms  INTEGER,
            state_before INTEGER NOT NULL,
            state_after  INTEGER NOT NULL,
            stability_after  REAL,
            difficulty_after REAL,
            due_after    TEXT,
            card_before  TEXT NOT NULL,                -- JSON snapshot, restored by undo
            response     TEXT,                         -- what the learner typed
            auto_correct INTEGER,                      -- 1/0 for auto-graded kinds, else NULL
            draw         TEXT                          -- JSON: a parametric question's numbers
        );
        CREATE INDEX reviews_time ON reviews (reviewed_at);
        CREATE INDEX reviews_question ON reviews (question_id, id);
        CREATE TRIGGER reviews_no_update BEFORE UPDATE ON reviews
            BEGIN SELECT RAISE(ABORT, 'the review log is append-only'); END;
        CREATE TRIGGER reviews_no_delete BEFORE DELETE ON reviews
            BEGIN SELECT RAISE(ABORT, 'the review log is append-only'); END;

        -- Undo appends a mark instead of deleting the review.
        CREATE TABLE undone (
            review_id INTEGER PRIMARY KEY REFERENCES reviews (id),
            undone_at TEXT NOT NULL
        );

        CREATE TABLE settings (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL                        -- JSON
        );
        """,
    ),
    (
        2,
        "reviews record the days since the previous review and the recall FSRS predicted",
        """
        ALTER TABLE reviews ADD COLUMN elapsed_days INTEGER;  -- whole days since the last review
        ALTER TABLE reviews ADD COLUMN recall_before REAL;    -- FSRS's predicted recall then
        -- The log is append-only; this one-time backfill of the new columns is the exception.
        DROP TRIGGER reviews_no_update;
        UPDATE reviews SET
            elapsed_days = MAX(0, CAST(julianday(reviewed_at)
                - julianday(json_extract(card_before, '$.last_review')) AS INTEGER)),
            recall_before = dlprep_recall(
                MAX(0, CAST(julianday(reviewed_at)
                    - julianday(json_extract(card_before, '$.last_review')) AS INTEGER)),
                json_extract(card_before, '$.stability'))
        WHERE json_extract(card_before, '$.last_review') IS NOT NULL
          AND json_extract(card_before, '$.stability') IS NOT NULL;
        CREATE TRIGGER reviews_no_update BEFORE UPDATE ON reviews
            BEGIN SELECT RAISE(ABORT, 'the review log is append-only'); END;
        CREATE INDEX reviews_retention ON reviews (reviewed_at, state_before, rating,
            elapsed_days, recall_before);
        """,
    ),
]
