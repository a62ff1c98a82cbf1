"""User settings (daily limits, retention, day start, ...): validated here, stored by the store."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dlprep.errors import UsageError


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    new_per_day: int = Field(20, ge=0, le=9999, description="New cards introduced per study day.")
    reviews_per_day: int = Field(
        200, ge=0, le=99999, description="Reviews of due cards per study day."
    )
    desired_retention: float = Field(
        0.9,
        ge=0.7,
        le=0.99,
        description="Target probability of recall when a card comes due (FSRS).",
    )
    day_starts_at: int = Field(
        4, ge=0, le=23, description="Local hour at which a study day starts (as in Anki)."
    )
    timezone: str = Field("", description="IANA time zone for study days; empty = the system's.")
    leech_threshold: int = Field(
        8, ge=1, le=99, description="Lapses after which a card is tagged leech and suspended."
    )
    maximum_interval_days: int = Field(36500, ge=1, description="Longest interval FSRS may give.")
    fsrs_parameters: list[float] | None = Field(
        None, description="Personal FSRS weights (None = the package's defaults)."
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r} (e.g. 'Europe/Paris')") from None
        return value

    def zone(self) -> ZoneInfo | None:
        return ZoneInfo(self.timezone) if self.timezone else None


def settable_keys() -> list[str]:
    return [k for k in Settings.model_fields if k != "fsrs_parameters"]


def parse_setting(settings: Settings, key: str, raw: str) -> Settings:
    """Return `settings` with `key` set from its text form; UsageError in one line if invalid."""
    if key not in settable_keys():
        raise UsageError(f"unknown setting {key!r}; settings: {', '.join(settable_keys())}")
    data: dict[str, Any] = settings.model_dump()
    data[key] = raw
    try:
        return Settings.model_validate(data)
    except ValidationError as err:
        msg = err.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
        raise UsageError(f"{key}: {msg}") from None
