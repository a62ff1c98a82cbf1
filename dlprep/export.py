"""Progress -> Markdown: a report that reads well in a terminal pager and on GitHub."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # render imports this module for text_bar: keep the quiz path light
    from collections.abc import Sequence
    from datetime import date, datetime

    from dlprep.bank import Bank
    from dlprep.progress import Progress
    from dlprep.scheduler import CardState, Scheduler


def _cell(text: str, width: int | None = None) -> str:
    """Make text safe inside a Markdown table cell."""
    flat = " ".join(str(text).split()).replace("|", "\\|")
    if width and len(flat) > width:
        flat = flat[: width - 1].rstrip() + "…"
    return flat


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def text_bar(n: int, most: int, width: int = 20) -> str:
    """A bar of n against the largest value `most`; any non-zero n gets at least one block."""
    return "█" * max(1 if n else 0, round(width * n / most)) if most else ""


SHADES = " ░▒▓█"


def calendar_rows(calendar: list[tuple[date, int]]) -> tuple[list[str], list[list[int | None]]]:
    """A year of daily counts as a GitHub-style grid: 7 rows (Monday first), one column per
    week, None before the first day and after the last. Returns (month label per column
    where a month starts, else ""), rows)."""
    if not calendar:
        return [], [[] for _ in range(7)]
    first = calendar[0][0]
    offset = first.weekday()
    weeks = (offset + len(calendar) + 6) // 7
    rows: list[list[int | None]] = [[None] * weeks for _ in range(7)]
    labels = [""] * weeks
    for i, (day, n) in enumerate(calendar):
        week, weekday = divmod(offset + i, 7)
        rows[weekday][week] = n
        if day.day <= 7 and weekday == 0 or i == 0:
            labels[week] = f"{day:%b}"
    return labels, rows


def shade(n: int | None, most: int) -> str:
    """One character for a day's count: blank before the calendar, '·' for none, then
    four shades by quarter of the busiest day."""
    if n is None:
        return " "
    if not n or not most:
        return "·"
    return SHADES[min(4, 1 + (4 * n - 1) // most)]


def _mermaid_bars(title: str, labels: list[str], values: list[float], y_label: str) -> list[str]:
    """A bar chart GitHub renders (Mermaid xychart-beta)."""
    top = max(values, default=0) or 1
    quoted = ", ".join(f'"{label}"' for label in labels)
    return [
        "```mermaid",
        "xychart-beta",
        f'    title "{title}"',
        f"    x-axis [{quoted}]",
        f'    y-axis "{y_label}" 0 --> {top:g}',
        f"    bar [{', '.join(f'{v:g}' for v in values)}]",
        "```",
    ]


def markdown_report(
    progress: Progress, bank: Bank, *, topics: Sequence[str] = (), days: int | None = None
) -> str:
    """The full report: summary, retention, per-topic mastery, weakest questions, the
    forecast and the activity history as charts GitHub renders, and a section per topic.
    `topics` limits the topic sections (the review figures cover every topic)."""
    p = progress
    activity = p.activity[-days:] if days else p.activity
    shown = [t for t in p.by_topic if not topics or t.topic in topics]
    r = p.retention
    lines = [
        f"# dlprep progress — {p.generated_at:%Y-%m-%d %H:%M} UTC",
        "",
        f"**{p.reviewed_cards} of {p.total_questions} questions studied** · "
        f"{p.total_reviews} answers given · **{p.due_now} due now**, {p.due_today} due today · "
        f"{p.new_available} new · target retention {_pct(p.desired_retention)}",
        "",
        f"Streak: **{p.streak} day{'s' * (p.streak != 1)}** (longest {p.longest_streak}). "
        f"Today: {p.today.total} answers ({p.today.new} new cards). "
        f"Mastered = in review with predicted recall ≥ {_pct(p.desired_retention)}.",
        "",
    ]
    if topics:
        lines += [
            f"Topics in this report: {', '.join(f'`{t}`' for t in topics)}. The review figures "
            "(retention, coming up, activity) cover every topic.",
            "",
        ]
    lines += ["## Retention", ""]
    if r.answers:
        lines += [
            f"In the last {p.retention_days} days you recalled **{_pct(r.true_retention)}** of "
            f"{r.answers} reviews; FSRS predicted {_pct(r.predicted)}. A true retention well "
            "below the prediction means the intervals are too long for you (`dlprep optimize` "
            "fits the scheduler to your own reviews).",
            "",
            "| Days since last review | Reviews | Recalled | Predicted |",
            "|---|---:|---:|---:|",
        ]
        lines += [
            f"| {b.label} | {b.answers} | {_pct(b.true_retention)} | {_pct(b.predicted)} |"
            for b in p.retention_by_interval
        ]
    else:
        lines.append(f"No reviews of learned cards in the last {p.retention_days} days yet.")
    lines += [
        "",
        "## By topic",
        "",
        "| Topic | Questions | Studied | Mastered | Due now |",
        "|---|---:|---:|---:|---:|",
    ]
    for t in shown:
        lines.append(
            f"| [{_cell(t.title)}](#{_anchor(t.title)}) | {t.questions} | {t.seen} | "
            f"{t.mastered} ({_pct(t.mastery)}) | {t.due_now} |"
        )
    lines += ["", "## Weakest questions", ""]
    weakest = [w for w in p.weakest if not topics or w.topic in topics]
    if weakest:
        lines += ["| Question | Topic | Recall now | Lapses | Demo |", "|---|---|---:|---:|---|"]
        for w in weakest:
            demo = f"`dlprep demo {w.demo}`" if w.demo else "—"
            lines.append(
                f"| `{w.id}`: {_cell(w.prompt, 70)} | {w.topic} | {_pct(w.recall)} | "
                f"{w.lapses} | {demo} |"
            )
    else:
        lines.append("Nothing studied yet: run `dlprep quiz`.")
    lines += ["", f"## Coming up (next {len(p.forecast)} days)", ""]
    counts = [n for _, n in p.forecast]
    lines += [
        f"{counts[0] if counts else 0} due today, {sum(counts[:7])} in the next 7 days, "
        f"{sum(counts)} in the next {len(counts)} (overdue cards count as today).",
        "",
    ]
    lines += _mermaid_bars(
        "Cards due per day", [f"{d:%m-%d}" for d, _ in p.forecast], counts, "cards"
    )
    lines += ["", f"## Activity (last {len(activity)} days)", ""]
    lines += _mermaid_bars(
        "Answers per day", [f"{d:%m-%d}" for d, _ in activity], [n for _, n in activity], "answers"
    )
    studied_days = sum(1 for _, n in p.calendar if n)
    if studied_days:
        labels, rows = calendar_rows(p.calendar)
        most = max(n for _, n in p.calendar)
        lines += [
            "",
            f"Studied on {studied_days} of the last {len(p.calendar)} days "
            "(one column per week, Monday at the top; darker = more answers):",
            "",
            "```text",
        ]
        lines += ["".join(shade(n, most) for n in row).rstrip() for row in rows]
        lines.append("```")
    for t in shown:
        lines += [
            "",
            f"## {t.title}",
            "",
            f"`{t.topic}` · {t.seen} of {t.questions} studied · {t.mastered} mastered "
            f"({_pct(t.mastery)}) `{text_bar(t.mastered, t.questions, 20):<20}` · "
            f"{t.due_now} due now" + (f" · {t.suspended} suspended" if t.suspended else ""),
        ]
        if t.weakest:
            lines += ["", "Weakest:", ""]
            for qid in t.weakest:
                q = bank.by_id[qid]
                demo = f" — `dlprep demo {q.demo}`" if q.demo else ""
                lines.append(f"- `{qid}`: {_cell(q.prompt, 90)}{demo}")
    if p.leeches:
        lines += [
            "",
            "## Leeches (suspended)",
            "",
            "Questions failed again and again; rewrite them in your own words or "
            "run their demo, then `dlprep unsuspend ID`.",
            "",
        ]
        lines += [f"- `{qid}`" for qid in p.leeches]
    if p.orphans:
        lines += [
            "",
            "## No longer in the bank",
            "",
            "These have review history but are not in the current bank; their history is kept.",
            "",
        ]
        lines += [f"- `{qid}`" for qid in p.orphans]
    return "\n".join(lines) + "\n"


def _anchor(heading: str) -> str:
    """The id GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    kept = "".join(c for c in heading.lower() if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


CSV_COLUMNS = (
    "id", "topic", "kind", "difficulty", "state", "due", "last_review", "last_rating",
    "recall_now", "stability_days", "fsrs_difficulty", "reps", "lapses", "suspended", "leech",
    "buried_until", "demo", "prompt",
)  # fmt: skip


def csv_rows(
    bank: Bank,
    cards: dict[str, CardState],
    last_ratings: dict[str, int],
    scheduler: Scheduler,
    now: datetime,
) -> list[dict]:
    """One row per question of the bank, in bank order, with its card's state now.

    `cards` maps question ids to stored CardState (questions never studied are new);
    recall_now is FSRS's predicted probability of recall at `now` (empty for new cards)."""
    from dlprep.scheduler import CardState

    def when(moment) -> str:
        return moment.strftime("%Y-%m-%d %H:%M") if moment else ""

    rows = []
    for q in bank.questions:
        card = cards.get(q.id) or CardState(q.id)
        studied = not card.is_new and card.stability is not None
        rows.append(
            {
                "id": q.id,
                "topic": q.topic,
                "kind": q.kind,
                "difficulty": q.difficulty,
                "state": card.state_name,
                "due": when(card.due),
                "last_review": when(card.last_review),
                "last_rating": last_ratings.get(q.id, ""),
                "recall_now": f"{scheduler.retrievability(card, now):.3f}" if studied else "",
                "stability_days": f"{card.stability:.2f}" if studied else "",
                "fsrs_difficulty": f"{card.difficulty:.2f}" if card.difficulty else "",
                "reps": card.reps,
                "lapses": card.lapses,
                "suspended": int(card.suspended),
                "leech": int(card.leech),
                "buried_until": when(
                    buried if (buried := card.buried_until) and buried > now else None
                ),
                "demo": q.demo,
                "prompt": " ".join(q.prompt.split()),
            }
        )
    return rows


def csv_text(rows: list[dict]) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
