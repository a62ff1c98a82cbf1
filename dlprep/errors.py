"""The one exception family that leaves dlprep's core; the CLI prints it as one red line."""

from __future__ import annotations


class DlprepError(Exception):
    """Base class: the message is a complete, user-facing sentence."""


class BankError(DlprepError):
    """The bank is invalid; `problems` has one line per problem: file:line: field: message."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        more = f" (+{len(problems) - 1} more; run 'dlprep bank check')" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}" if problems else "invalid question bank")


class StoreError(DlprepError):
    """The progress database cannot be opened, read or written."""


class NotFoundError(DlprepError):
    """A question, topic or other named thing does not exist."""


class UsageError(DlprepError):
    """An argument or setting has a value dlprep cannot use."""
