"""Everything the terminal shows. The only module that imports rich.

Functions take plain results from the core and print them; none of them decides anything.
rich's Markdown and Table are imported where used: the quiz's first prompt needs neither.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from rich.console import Console
from rich.markup import escape

from dlprep.export import text_bar
from dlprep.scheduler import Rating, describe_interval

RATING_NAMES = {
    Rating.Again: "Again",
    Rating.Hard: "Hard",
    Rating.Good: "Good",
    Rating.Easy: "Easy",
}
RATING_STYLES = {
    Rating.Again: "red",
    Rating.Hard: "yellow",
    Rating.Good: "green",
    Rating.Easy: "cyan",
}
QUIZ_HELP = (
    "While answering: type your answer (or just Enter), ':u' undo the previous answer, "
    "':b' bury this card until tomorrow, ':s' suspend it, ':q' quit, ':h' this help.\n"
    "While rating: 1 Again, 2 Hard, 3 Good, 4 Easy, Enter = the suggested rating; "
    "u, b, s, q and h work here too."
)


def _out() -> Console:
    # Built per call: the console must follow sys.stdout and $COLUMNS as they are now.
    return Console(highlight=False, soft_wrap=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def error(message: str) -> None:
    _err().print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def warn(message: str) -> None:
    _err().print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def line(message: str = "", style: str | None = None) -> None:
    _out().print(escape(message), style=style, soft_wrap=True)


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def markdown(text: str) -> None:
    from rich.markdown import Markdown  # imported late: the quiz's first prompt needs none of it

    _out().print(Markdown(text))


def prompt(text: str) -> None:
    """Print a prompt without a newline; the caller reads the answer from stdin."""
    console = _out()
    console.print(text, end="", markup=True, highlight=False)
    console.file.flush()


# -- bank ------------------------------------------------------------------------------------


def bank_problems(problems: Sequence[str]) -> None:
    console = _err()
    for problem in problems:
        console.print(f"[red]✗[/] {escape(problem)}", soft_wrap=True)


def bank_ok(files: int, questions: int, topics: int) -> None:
    _out().print(f"[green]✓[/] {questions} questions in {topics} topics ({files} files): all valid")


def question_table(rows: Sequence[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(show_lines=False, header_style="bold")
    for name in ("id", "topic", "kind", "difficulty", "state", "due"):
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(
            *(escape(str(row[k])) for k in ("id", "topic", "kind", "difficulty", "state", "due"))
        )
    console = _out()
    console.print(table)
    console.print(f"{len(rows)} questions")


def question_detail(
    question: Any, state: str, due: str, location: str, history: Sequence[Any]
) -> None:
    console = _out()
    console.rule(
        f"[bold]{escape(question.id)}[/]  [dim]{escape(question.topic)} · "
        f"{question.kind} · {question.difficulty}[/]"
    )
    console.print(f"[bold]{escape(question.prompt)}[/]\n")
    if question.kind == "mcq":
        for choice in question.choices:
            mark = "[green]✓[/]" if choice == question.correct else " "
            console.print(f"  {mark} {escape(choice)}")
        console.print()
    markdown(question.answer)
    _bullets("Key points", question.key_points)
    _bullets("Pitfalls", question.pitfalls)
    _bullets("Follow-ups", question.follow_ups)
    if question.demo:
        console.print(f"\n[bold]Demo:[/] dlprep demo {escape(question.demo)}")
    if question.references:
        console.print("\n[bold]References[/]")
        for ref in question.references:
            console.print(f"  • {escape(ref.title)} — {escape(ref.url)}", soft_wrap=True)
    extra = [f"sources: {', '.join(question.sources)}"] if question.sources else []
    console.print(
        f"\n[dim]{escape(location)} · tags: {escape(', '.join(question.tags) or '-')}"
        f"{' · ' + escape(extra[0]) if extra else ''}[/]",
        soft_wrap=True,
    )
    console.print(f"[dim]progress: {state}, due {escape(due)}, {len(history)} answers[/]")
    for review in history[-10:]:
        undone = " (undone)" if review.undone else ""
        console.print(
            f"[dim]  {review.reviewed_at:%Y-%m-%d %H:%M} "
            f"{RATING_NAMES[Rating(review.rating)]}{undone}[/]"
        )


def _bullets(title: str, items: Sequence[str]) -> None:
    if not items:
        return
    from rich.table import Table

    grid = Table.grid(padding=(0, 1))
    grid.add_column(width=3, justify="right")
    grid.add_column()
    for item in items:
        grid.add_row("•", escape(item))  # wrapped lines hang under the text, not the bullet
    console = _out()
    console.print(f"\n[bold]{title}[/]")
    console.print(grid)


# -- quiz ------------------------------------------------------------------------------------


def _progress_bar(done: int, total: int, width: int = 24) -> str:
    filled = round(width * done / total) if total else width
    return f"[green]{'━' * filled}[/][dim]{'━' * (width - filled)}[/]"


def card_front(item: Any, position: int, total: int, state: str) -> None:
    console = _out()
    question = item.question
    console.print()
    console.print(
        f"{_progress_bar(position - 1, total)} [bold]{position}/{total}[/]  "
        f"[dim]{escape(question.topic)} · {question.difficulty} · {state}[/]"
    )
    console.print(f"[bold]{escape(item.prompt)}[/]", soft_wrap=True)
    if item.choices:
        for letter, choice in zip("ABCDEFGH", item.choices, strict=False):
            console.print(f"  [bold]{letter})[/] {escape(choice)}", soft_wrap=True)
    if question.kind == "numeric" and question.unit:
        console.print(f"[dim](answer in {escape(question.unit)})[/]")


def answer_prompt(kind: str) -> str:
    hint = {"mcq": "letter", "numeric": "number"}.get(kind, "your answer, or Enter to reveal")
    return f"[dim]({hint}; :h help)[/] > "


def card_back(item: Any, grade: Any, response: str = "") -> None:
    console = _out()
    question = item.question
    if grade is None and response.strip():
        # Open questions: put what was typed right above the model answer, to compare.
        console.print(f"[dim]your answer:[/] {escape(response.strip())}", soft_wrap=True)
    if grade is not None:
        if grade.correct:
            console.print(f"[bold green]✓ correct[/] ({escape(grade.expected)})")
        else:
            given = f"you said {escape(grade.given)}; " if grade.given else ""
            console.print(f"[bold red]✗ not quite[/] — {given}answer: {escape(grade.expected)}")
    if item.draw is not None:
        console.print(f"[dim]{escape(item.draw.working)}[/]")
    console.rule(style="dim")
    markdown(question.answer)
    _bullets("Key points", question.key_points)
    if question.demo:
        console.print(f"\n[bold]See it run:[/] dlprep demo {escape(question.demo)}")
    console.rule(style="dim")


def rating_prompt(intervals: dict[Rating, timedelta], suggested: Rating) -> str:
    parts = []
    for rating, delta in intervals.items():
        style = RATING_STYLES[rating]
        label = f"[{style}]{int(rating)} {RATING_NAMES[rating]}[/] ({describe_interval(delta)})"
        parts.append(f"[bold]{label}[/]" if rating == suggested else label)
    return f"{'  '.join(parts)}  [dim][Enter={RATING_NAMES[suggested]}][/] > "


def answered(
    rating: Rating, due: datetime | None, now: datetime, became_leech: bool, cram: bool
) -> None:
    console = _out()
    if cram:
        console.print(f"[dim]{RATING_NAMES[rating]} — cram mode, schedule unchanged[/]")
    elif due is not None:
        console.print(
            f"[dim]{RATING_NAMES[rating]} — next review in {describe_interval(due - now)}[/]"
        )
    if became_leech:
        console.print(
            "[yellow]This card is a leech (failed again and again): it is tagged "
            "and suspended. Rework it, then `dlprep unsuspend`.[/]"
        )


def quiz_help() -> None:
    _out().print(f"[dim]{escape(QUIZ_HELP)}[/]", soft_wrap=True)


def nothing_to_study(next_due: datetime | None, now: datetime, new_left: int) -> None:
    console = _out()
    console.print("[green]Nothing due right now.[/]")
    if next_due is not None:
        console.print(f"Next card due in {describe_interval(next_due - now)}.")
    if new_left:
        console.print(
            f"{new_left} new questions are waiting: today's new-card limit is used "
            "up; `dlprep quiz --new 10` takes more."
        )


def session_summary(summary: Any, now: datetime) -> None:
    console = _out()
    console.print()
    if not summary.answered:
        console.print("[dim]No cards answered.[/]")
    else:
        minutes = summary.seconds / 60
        ratings = "  ".join(
            f"[{RATING_STYLES[r]}]{RATING_NAMES[r]} {summary.ratings.get(r, 0)}[/]" for r in Rating
        )
        console.print(
            f"[bold]Session done:[/] {summary.answered} answered "
            f"({summary.new_cards} new) in {minutes:.1f} min   {ratings}"
        )
        if summary.auto_graded:
            console.print(f"Auto-graded: {summary.auto_correct}/{summary.auto_graded} correct")
    if summary.leeches:
        console.print(f"[yellow]New leeches (suspended): {', '.join(summary.leeches)}[/]")
    if summary.left_in_queue:
        console.print(f"{summary.left_in_queue} cards left in this session's queue.")
    if summary.cram:
        console.print("[dim]Cram mode: the schedule is unchanged.[/]")
    elif summary.next_due is not None:
        when = (
            "now" if summary.next_due <= now else f"in {describe_interval(summary.next_due - now)}"
        )
        console.print(f"Next card due {when}. Everything answered is saved.")


# -- progress --------------------------------------------------------------------------------


def stats(progress: Any) -> None:
    from rich.table import Table

    p = progress
    console = _out()
    console.print(
        f"[bold]{p.reviewed_cards}[/] of {p.total_questions} questions studied · "
        f"{p.total_reviews} answers · [bold]{p.due_now} due now[/], {p.due_today} today · "
        f"{p.new_available} new · today: {p.today.total} answers ({p.today.new} new)"
    )
    table = Table(header_style="bold")
    table.add_column("topic")
    for name in ("questions", "studied", "mastered", "due"):
        table.add_column(name, justify="right")
    for t in p.by_topic:
        table.add_row(
            escape(t.topic),
            str(t.questions),
            str(t.seen),
            f"{t.mastered} ({100 * t.mastery:.0f}%)",
            str(t.due_now),
        )
    console.print(table)
    states = ", ".join(f"{name} {n}" for name, n in p.by_state.items())
    console.print(f"[dim]cards: {states}; suspended {p.suspended}; leeches {len(p.leeches)}[/]")
    most = max((n for _, n in p.activity), default=0)
    if most:
        console.print("[bold]last days[/]")
        for day, n in p.activity:
            bar = text_bar(n, most, width=30)
            console.print(f"  {day:%a %m-%d} {n:>5} [green]{bar}[/]")
    _retention(console, p)
    _forecast(console, p)
    _calendar(console, p)
    if p.orphans:
        console.print(
            f"[dim]{len(p.orphans)} questions with history are no longer in the bank "
            f"(kept): {', '.join(p.orphans[:5])}{' …' if len(p.orphans) > 5 else ''}[/]"
        )


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.0f}%"


def _retention(console: Console, p: Any) -> None:
    from rich.table import Table

    r = p.retention
    if not r.answers:
        console.print(
            f"[dim]retention: no reviews of cards in review in the last "
            f"{p.retention_days} days yet[/]"
        )
        return
    console.print(
        f"[bold]retention[/], last {p.retention_days} days: [bold]{_pct(r.true_retention)}[/] "
        f"recalled of {r.answers} reviews; FSRS predicted {_pct(r.predicted)} "
        f"(target {_pct(p.desired_retention)})"
    )
    table = Table(header_style="bold", box=None, padding=(0, 2))
    for name in ("since last review", "reviews", "recalled", "predicted"):
        table.add_column(name, justify="right")
    for b in p.retention_by_interval:
        table.add_row(b.label, str(b.answers), _pct(b.true_retention), _pct(b.predicted))
    console.print(table)
    days = [d.true_retention for d in p.retention_by_day]
    if sum(d is not None for d in days) > 1:
        console.print(
            f"  by day [green]{sparkline(days, 0.5, 1.0)}[/] [dim](50-100%, blank: no reviews)[/]"
        )


def _forecast(console: Console, p: Any) -> None:
    counts = [n for _, n in p.forecast]
    if not any(counts):
        return
    most = max(counts)
    week = sum(counts[:7])
    console.print(
        f"[bold]due[/] today {counts[0]}, tomorrow {counts[1] if len(counts) > 1 else 0}, "
        f"next 7 days {week}, next {len(counts)} days {sum(counts)}"
    )
    console.print(f"  [cyan]{sparkline(counts, 0, most)}[/] [dim](per day, peak {most})[/]")


def _calendar(console: Console, p: Any) -> None:
    from dlprep.export import calendar_rows, shade

    studied = sum(1 for _, n in p.calendar if n)
    if not studied:
        return
    console.print(
        f"[bold]streak[/] {p.streak} day{'s' * (p.streak != 1)} · longest "
        f"{p.longest_streak} · studied on {studied} of the last {len(p.calendar)} days"
    )
    labels, rows = calendar_rows(p.calendar)
    most = max(n for _, n in p.calendar)
    months = [" "] * len(labels)  # month names over the week in which each month starts
    free = 0  # the first column a label may use without touching the previous one
    for week, label in enumerate(labels):
        if label and week >= free and week + len(label) <= len(months):
            months[week : week + len(label)] = label
            free = week + len(label) + 1
    console.print("      " + "".join(months), style="dim", highlight=False)
    for weekday, name in enumerate(("Mon", "", "Wed", "", "Fri", "", "Sun")):
        cells = "".join(shade(n, most) for n in rows[weekday])
        console.print(f"  {name:<3} [green]{cells}[/]", highlight=False)


def optimize_result(fit: Any, adopted: bool) -> None:
    console = _out()
    sample = (
        f" (a sample of {fit.cards} cards' histories out of {fit.sampled_from} answers)"
        if fit.sampled_from
        else f" of {fit.cards} cards"
    )
    console.print(f"fitted on {fit.answers} answers{sample}, {fit.eligible} of them on a later day")
    console.print(
        f"log loss of predicted recall: before [bold]{fit.loss_before:.4f}[/], "
        f"after [bold]{fit.loss_after:.4f}[/] (lower is better)"
    )
    if adopted:
        console.print(
            "[green]the new parameters are used from now on[/] "
            "('dlprep optimize --reset' goes back to the defaults)"
        )
    else:
        console.print("[yellow]no better than the parameters in use: kept them[/]")


def interview_intro(session: Any) -> None:
    console = _out()
    console.print(
        f"[bold]Mock interview[/]: {len(session.planned)} questions in {session.minutes} "
        "minutes, warm-up first, then harder ones. Answer as you would out loud; end an "
        "answer with an empty line. Ctrl-D ends the interview early."
    )


def interview_question(question: Any, number: int, total: int, seconds_left: float) -> None:
    console = _out()
    minutes, seconds = divmod(int(seconds_left), 60)
    console.print()
    console.print(
        f"[bold]{number}/{total}[/]  [dim]{escape(question.topic)} · {question.difficulty} · "
        f"{minutes}:{seconds:02d} left[/]"
    )
    console.print(f"[bold]{escape(question.prompt)}[/]", soft_wrap=True)


def interview_key_points(question: Any) -> None:
    console = _out()
    console.print("[bold]What the interviewer listens for:[/]")
    for number, point in enumerate(question.key_points, start=1):
        console.print(f"  {number}. {escape(point)}", soft_wrap=True)


def ticks_prompt(count: int) -> str:
    return f"which did you cover? (e.g. 1 3, 1-{count}, all, none)"


def interview_scored(entry: Any) -> None:
    colour = "red" if entry.weak else "green"
    answer = entry.question.answer.strip().split("\n\n")[0]
    _out().print(f"[{colour}]{100 * entry.score:.0f}% of the key points[/]")
    _out().print(f"[dim]{escape(answer)}[/]", soft_wrap=True)


def interview_follow_up(text: str) -> None:
    _out().print(f"[bold]Follow-up:[/] {escape(text)}", soft_wrap=True)


def interview_summary(session: Any, path: Any, weak: int) -> None:
    console = _out()
    console.print()
    if not session.answered:
        console.print("no questions answered: nothing recorded")
        return
    console.print(
        f"[bold]score {100 * session.score:.0f}%[/] over {len(session.answered)} questions; "
        f"{weak} weak answer{'s' * (weak != 1)} now due in 'dlprep quiz'"
    )
    console.print(f"report: {path}")


def settings_table(values: dict[str, Any], descriptions: dict[str, str]) -> None:
    from rich.table import Table

    table = Table(header_style="bold")
    for name in ("setting", "value", "meaning"):
        table.add_column(name, overflow="fold")
    for key, value in values.items():
        table.add_row(key, escape(json.dumps(value)), escape(descriptions.get(key, "")))
    _out().print(table)


# -- demos -----------------------------------------------------------------------------------

SPARKS = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float], low: float, high: float, log: bool = False) -> str:
    """One character per value, scaled between `low` and `high` (log scale if asked)."""
    import math

    def scale(v: float) -> float:
        return math.log10(max(v, 1e-300)) if log else v

    lo, hi = scale(low), scale(high)
    span = (hi - lo) or 1.0
    out = []
    for v in values:
        if v is None or v != v:  # NaN: a gap
            out.append(" ")
            continue
        level = (scale(v) - lo) / span
        out.append(SPARKS[min(len(SPARKS) - 1, max(0, round(level * (len(SPARKS) - 1))))])
    return "".join(out)


def _downsample(values: Sequence[float], width: int) -> list[float]:
    if len(values) <= width:
        return list(values)
    step = len(values) / width
    return [values[int(i * step)] for i in range(width)]


def demo_list(rows: Sequence[dict[str, Any]]) -> None:
    from rich.table import Table

    table = Table(header_style="bold")
    table.add_column("demo", no_wrap=True)
    table.add_column("what it shows")
    table.add_column("questions", overflow="fold")
    for row in rows:
        table.add_row(row["id"], escape(row["summary"]), escape(", ".join(row["questions"])))
    console = _out()
    console.print(table)
    console.print(f"{len(rows)} demos · run one with: dlprep demo NAME [--quick] [--device cuda]")


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_fmt(v)}" for k, v in value.items())
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v) for v in value[:8]) + (", …]" if len(value) > 8 else "]")
    return str(value)


def demo_report(report: Any) -> None:
    from rich.table import Table

    console = _out()
    r = report.result
    mode = "quick" if report.quick else "full"
    console.rule(
        f"[bold]{escape(report.demo)}[/]  [dim]{report.device} · seed {report.seed} · "
        f"{mode} · {report.seconds:.2f} s[/]"
    )
    for t in r.tables:
        table = Table(title=escape(t.title), header_style="bold", title_justify="left")
        for column in t.columns:
            table.add_column(escape(str(column)), overflow="fold")
        for row in t.rows:
            table.add_row(*(escape(_fmt(v)) for v in row))
        console.print(table)
    for curve in r.curves:
        values = [v for ys in curve.series.values() for v in ys if v is not None and v == v]
        if not values:
            continue
        low, high = min(values), max(values)
        console.print(
            f"[bold]{escape(curve.title)}[/] [dim](x: {escape(curve.x_label)}; "
            f"{'log ' if curve.log_y else ''}scale {low:.3g} … {high:.3g})[/]"
        )
        width = max(len(name) for name in curve.series)
        for name, ys in curve.series.items():
            line = sparkline(_downsample(ys, 60), low, high, curve.log_y)
            console.print(
                f"  {escape(name):<{width}} [cyan]{line}[/] {_fmt(ys[0])} → {_fmt(ys[-1])}"
            )
    if r.metrics:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="dim")
        grid.add_column()
        for key, value in r.metrics.items():
            grid.add_row(escape(key), escape(_fmt(value)))
        console.print(grid)
    for note in r.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    console.print()
    for claim in r.claims:
        mark = "[bold green]✓[/]" if claim.holds else "[bold red]✗[/]"
        detail = f" [dim]({escape(claim.detail)})[/]" if claim.detail else ""
        console.print(f"{mark} {escape(claim.text)}{detail}", soft_wrap=True)
    held = sum(c.holds for c in r.claims)
    style = "green" if r.all_hold else "red"
    console.print(f"[{style}]{held}/{len(r.claims)} claims hold[/]")
