"""Progress -> Markdown: a report that reads well in a terminal pager and on GitHub."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # render imports this module for text_bar: keep the quiz path light
    from dlprep.progress import Progress


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
