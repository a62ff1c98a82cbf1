"""User settings (daily limits, retention, day start, ...): defaults, ranges and validation.

Plain dataclass rather than pydantic: settings are read before every quiz, and the quiz
path must not pay for pydantic's model machinery.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dlprep.errors import UsageError


def _setting(default: Any, help: str, low: float | None = None, high: float | None = None):
    return field(default=default, metadata={"help": help, "range": (low, high)})


@dataclass(frozen=True)
class Settings:
    new_per_day: int = _setting(20, "New cards introduced per study day.", 0, 9999)
    reviews_per_day: int = _setting(200, "Reviews of due cards per study day.", 0, 99999)
    desired_retention: float = _setting(
        0.9, "Target probability of recall when a card comes due (FSRS).", 0.7, 0.99
    )
    day_starts_at: int = _setting(4, "Local hour at which a study day starts (as in Anki).", 0, 23)
    timezone: str = _setting("", "IANA time zone for study days; empty = the system's.")
    leech_threshold: int = _setting(
        8, "Lapses after which a card is tagged leech and suspended.", 1, 99
    )
    maximum_interval_days: int = _setting(36500, "Longest interval FSRS may give.", 1, 36500)
    fsrs_parameters: tuple[float, ...] | None = _setting(
        None, "Personal FSRS weights (None = the package's defaults)."
    )

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            low, high = f.metadata["range"]
            if low is not None and not low <= value <= high:
                raise UsageError(f"{f.name}: must be between {low} and {high}, not {value}")
        if self.timezone:
            try:
                ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise UsageError(
                    f"timezone: unknown time zone {self.timezone!r} (e.g. 'Europe/Paris')"
                ) from None

    def zone(self) -> ZoneInfo | None:
        return ZoneInfo(self.timezone) if self.timezone else None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.fsrs_parameters is not None:
            data["fsrs_parameters"] = list(self.fsrs_parameters)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Settings from stored values (unknown keys are ignored: a newer dlprep may add some)."""
        known = {f.name: f for f in fields(cls)}
        values = {k: _coerce(known[k], v) for k, v in data.items() if k in known}
        return cls(**values)


def descriptions() -> dict[str, str]:
    return {f.name: f.metadata["help"] for f in fields(Settings)}


def settable_keys() -> list[str]:
    return [f.name for f in fields(Settings) if f.name != "fsrs_parameters"]


def _coerce(f, value: Any) -> Any:
    kind = {"int": int, "float": float, "str": str}.get(str(f.type))
    if f.name == "fsrs_parameters":
        return None if value is None else tuple(float(v) for v in value)
    if kind is None:
        return value
    if kind is int and isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        raise ValueError(f"{f.name}: expected a whole number, not {value!r}")
    if kind is int and isinstance(value, float) and not value.is_integer():
        raise ValueError(f"{f.name}: expected a whole number, not {value!r}")
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{f.name}: expected a {kind.__name__}, not {value!r}") from None


def parse_setting(settings: Settings, key: str, raw: str) -> Settings:
    """Return `settings` with `key` set from its text form; UsageError in one line if invalid."""
    if key not in settable_keys():
        raise UsageError(f"unknown setting {key!r}; settings: {', '.join(settable_keys())}")
    f = next(f for f in fields(Settings) if f.name == key)
    try:
        return replace(settings, **{key: _coerce(f, raw)})
    except ValueError as exc:
        raise UsageError(str(exc)) from None
