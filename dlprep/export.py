"""Progress -> Markdown: a report that reads well in a terminal pager and on GitHub."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # render imports this module for text_bar: keep the quiz path light
    from datetime import datetime

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


def markdown_report(progress: Progress) -> str:
    p = progress
    lines = [
        f"# dlprep progress — {p.generated_at:%Y-%m-%d %H:%M} UTC",
        "",
        f"**{p.reviewed_cards} of {p.total_questions} questions studied** · "
        f"{p.total_reviews} answers given · **{p.due_now} due now**, {p.due_today} due today · "
        f"{p.new_available} new · target retention {_pct(p.desired_retention)}",
        "",
        f"Today: {p.today.total} answers ({p.today.new} new cards). "
        f"Mastered = in review with predicted recall ≥ {_pct(p.desired_retention)}.",
        "",
        "## By topic",
        "",
        "| Topic | Questions | Studied | Mastered | Due now |",
        "|---|---:|---:|---:|---:|",
    ]
    for t in p.by_topic:
        lines.append(
            f"| {_cell(t.title)} (`{t.topic}`) | {t.questions} | {t.seen} | "
            f"{t.mastered} ({_pct(t.mastery)}) | {t.due_now} |"
        )
    lines += ["", "## Weakest questions", ""]
    if p.weakest:
        lines += ["| Question | Topic | Recall now | Lapses | Demo |", "|---|---|---:|---:|---|"]
        for w in p.weakest:
            demo = f"`dlprep demo {w.demo}`" if w.demo else "—"
            lines.append(
                f"| `{w.id}`: {_cell(w.prompt, 70)} | {w.topic} | {_pct(w.recall)} | "
                f"{w.lapses} | {demo} |"
            )
    else:
        lines.append("Nothing studied yet: run `dlprep quiz`.")
    lines += ["", f"## Recent activity (last {len(p.activity)} days)", ""]
    most = max((n for _, n in p.activity), default=0)
    lines += ["| Day | Answers | |", "|---|---:|---|"]
    for day, n in p.activity:
        lines.append(f"| {day:%a %Y-%m-%d} | {n} | {text_bar(n, most)} |")
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
