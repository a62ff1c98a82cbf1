"""A lossless JSON backup of progress: `dlprep export json` and `dlprep import json`.

The file holds every row of the progress database as stored: card states, the whole review
log (undone answers included, with their undo marks) and settings. Importing it into an
empty home recreates the same database, so every statistic comes out the same.

An import is validated completely before anything is written, and then written in one
transaction: a malformed or foreign file is refused with one line naming what is wrong, and
the database is left as it was.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dlprep import __version__
from dlprep.errors import UsageError
from dlprep.migrations import MIGRATIONS
from dlprep.store import Store

FORMAT = "dlprep-progress"
VERSION = 1

State = Annotated[int, Field(ge=0, le=3)]
Count = Annotated[int, Field(ge=0)]


def _utc_text(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValueError(f"{value!r} is not an ISO 8601 time") from None
    if moment.utcoffset() is None:
        raise ValueError(f"{value!r} has no time zone")
    return value


def _json_text(value: str | None) -> str | None:
    if value is not None:
        try:
            json.loads(value)
        except ValueError:
            raise ValueError(f"{value[:40]!r} is not JSON") from None
    return value


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class CardRow(_Row):
    question_id: Annotated[str, Field(min_length=1)]
    state: State
    step: Count | None
    stability: float | None
    difficulty: float | None
    due: str | None
    last_review: str | None
    reps: Count
    lapses: Count
    suspended: Literal[0, 1]
    leech: Literal[0, 1]
    buried_until: str | None

    _times = field_validator("due", "last_review", "buried_until")(_utc_text)


class ReviewRow(_Row):
    id: Annotated[int, Field(ge=1)]
    question_id: Annotated[str, Field(min_length=1)]
    rating: Annotated[int, Field(ge=1, le=4)]
    reviewed_at: str
    duration_ms: Count | None
    state_before: State
    state_after: State
    stability_after: float | None
    difficulty_after: float | None
    due_after: str | None
    card_before: str
    response: str | None
    auto_correct: Literal[0, 1] | None
    draw: str | None
    # added by schema 2: absent from a backup of schema 1
    elapsed_days: Count | None = None
    recall_before: Annotated[float, Field(ge=0, le=1)] | None = None

    _times = field_validator("reviewed_at", "due_after")(_utc_text)
    _json = field_validator("card_before", "draw")(_json_text)


class UndoneRow(_Row):
    review_id: Annotated[int, Field(ge=1)]
    undone_at: str

    _times = field_validator("undone_at")(_utc_text)


class SettingRow(_Row):
    key: Annotated[str, Field(min_length=1)]
    value: str

    _json = field_validator("value")(_json_text)


class BackupFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["dlprep-progress"]
    version: Literal[1]
    exported_at: str
    dlprep_version: str
    schema_version: Annotated[int, Field(ge=1)] = Field(alias="schema")
    cards: list[CardRow]
    reviews: list[ReviewRow]
    undone: list[UndoneRow]
    settings: list[SettingRow]


def export_json(store: Store, now: datetime) -> str:
    tables = store.dump()
    document = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": now.isoformat(),
        "dlprep_version": __version__,
        "schema": tables.pop("schema"),
        **tables,
    }
    return json.dumps(document, ensure_ascii=False, indent=1) + "\n"


def parse_backup(text: str, where: str) -> BackupFile:
    """Validate a backup completely; raise UsageError with one line naming the first problem."""
    try:
        data: Any = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"{where}: not JSON ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(f'{where}: not a dlprep progress backup (no "format": "{FORMAT}")')
    if data.get("version") != VERSION:
        raise UsageError(
            f"{where}: backup format version {data.get('version')!r}; this dlprep reads "
            f"version {VERSION}"
        )
    try:
        backup = BackupFile.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"])
        more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
        raise UsageError(f"{where}: {field}: {error['msg']}{more}") from None
    newest = MIGRATIONS[-1][0]
    if backup.schema_version > newest:
        raise UsageError(
            f"{where}: written by a newer dlprep (schema {backup.schema_version} > {newest}); "
            "upgrade dlprep to import it"
        )
    _check_consistency(backup, where)
    return backup


def _check_consistency(backup: BackupFile, where: str) -> None:
    def unique(values: list, what: str) -> None:
        seen = set()
        for value in values:
            if value in seen:
                raise UsageError(f"{where}: {what} {value!r} appears twice")
            seen.add(value)

    unique([c.question_id for c in backup.cards], "card")
    unique([r.id for r in backup.reviews], "review id")
    unique([u.review_id for u in backup.undone], "undo mark for review")
    unique([s.key for s in backup.settings], "setting")
    review_ids = {r.id for r in backup.reviews}
    for mark in backup.undone:
        if mark.review_id not in review_ids:
            raise UsageError(f"{where}: undone: review {mark.review_id} is not in the file")


def import_json(store: Store, text: str, where: str) -> BackupFile:
    backup = parse_backup(text, where)
    store.restore(
        {
            "cards": [row.model_dump() for row in backup.cards],
            "reviews": [row.model_dump() for row in backup.reviews],
            "undone": [row.model_dump() for row in backup.undone],
            "settings": [row.model_dump() for row in backup.settings],
        }
    )
    return backup
