"""The shipped question bank as a learner relies on it: every interview question of the seed
notes is there, each question is complete and links to a demo that exists, and the
auto-graded questions can be graded."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import yaml

from dlprep import demos, paths
from dlprep.bank import load_bank

CONTENT = paths.builtin_content_dir()
SEEDS = Path(__file__).resolve().parents[1].parent / "shared" / "seeds"


def seed_interview_questions(seeds: Path) -> set[str]:
    """Every citation the bank owes the seed notes, found by reading them:

    - a bullet under an "Interview Questions" heading (000_... and 002_...),
    - a "### N." scenario under "## Common Interview Scenarios" (002_...),
    - a "## N. Heading" numbered interview note (003_..., whose title says "Interview Notes").
    """
    wanted = set()
    for seed in sorted(seeds.glob("*.txt")):
        lines = seed.read_text(encoding="utf-8").splitlines()
        numbered_notes = bool(lines) and "interview notes" in lines[0].lower()
        in_questions = in_scenarios = False
        for number, line in enumerate(lines, start=1):
            text = line.strip()
            if re.fullmatch(r"(#+\s*|\*\*)Interview Questions(\*\*)?:?", text):
                in_questions = True
                continue
            if in_questions:
                if text.startswith("- "):
                    wanted.add(f"{seed.name}:{number}")
                    continue
                in_questions = False
            if text.startswith("## "):
                in_scenarios = text == "## Common Interview Scenarios"
            if in_scenarios and re.match(r"### \d+\.", text):
                wanted.add(f"{seed.name}:{number}")
            if numbered_notes and re.match(r"## \d+\. ", text):
                wanted.add(f"{seed.name}:{number}")
    return wanted


@pytest.fixture(scope="module")
def bank():
    return load_bank([CONTENT])


@pytest.fixture(scope="module")
def raw_questions() -> list[dict]:
    return [
        q
        for f in sorted(CONTENT.glob("*.yaml"))
        for q in yaml.safe_load(f.read_text(encoding="utf-8"))["questions"]
    ]


@pytest.fixture(scope="module")
def owed() -> set[str]:
    if not SEEDS.is_dir():
        pytest.skip(f"{SEEDS} is absent")
    return seed_interview_questions(SEEDS)


def test_the_seed_notes_hold_82_interview_questions(owed):
    by_file = Counter(source.split(":")[0] for source in owed)
    assert sum(by_file.values()) == 82, by_file
    assert by_file["000_6bf5bb067515d57f.txt"] == 5
    assert by_file["002_cb34b3176787f443.txt"] == 60  # 57 bullets + 3 scenarios
    assert by_file["003_963ed305db874a75.txt"] == 17


def test_every_seed_interview_question_is_cited(bank, owed):
    cited = {source for q in bank.questions for source in q.sources}
    missing = sorted(owed - cited, key=lambda s: (s.split(":")[0], int(s.split(":")[1])))
    assert missing == [], f"seed interview questions no question cites: {missing}"


def test_each_seed_question_is_cited_by_exactly_one_question(bank, owed):
    citing = defaultdict(list)
    for q in bank.questions:
        for source in q.sources:
            citing[source].append(q.id)
    twice = {s: ids for s, ids in citing.items() if s in owed and len(ids) > 1}
    assert twice == {}


def test_every_citation_points_at_a_seed_interview_question(bank, owed):
    stray = sorted({s for q in bank.questions for s in q.sources} - owed)
    assert stray == [], f"sources that are not interview questions of the seeds: {stray}"


def test_the_bank_is_big_enough_and_ids_are_unique(bank, raw_questions):
    ids = [q["id"] for q in raw_questions]
    assert len(ids) == len(set(ids))
    assert len(bank.questions) >= 250


def test_every_question_links_to_a_demo_that_exists(bank):
    known = demos.available()
    missing = [q.id for q in bank.questions if not q.demo]
    unknown = [f"{q.id}: {q.demo}" for q in bank.questions if q.demo and q.demo not in known]
    assert missing == [] and unknown == []


def test_every_question_is_complete(bank):
    problems = []
    for q in bank.questions:
        if not 3 <= len(q.key_points) <= 6:
            problems.append(f"{q.id}: {len(q.key_points)} key points")
        if not q.references:
            problems.append(f"{q.id}: no references")
        if not q.pitfalls or not q.follow_ups:
            problems.append(f"{q.id}: no pitfalls or follow-ups")
        if len(q.answer.split()) < 40:
            problems.append(f"{q.id}: a {len(q.answer.split())}-word answer")
    assert problems == []


def test_every_topic_has_questions_of_more_than_one_difficulty(bank):
    by_topic = defaultdict(set)
    for q in bank.questions:
        by_topic[q.topic].add(q.difficulty)
    assert {t: d for t, d in by_topic.items() if len(d) < 2} == {}


def test_enough_questions_are_auto_graded(bank):
    graded = [q for q in bank.questions if q.kind in ("mcq", "numeric")]
    assert len(graded) >= 50


def test_every_mcq_has_exactly_one_correct_choice(raw_questions):
    for q in (q for q in raw_questions if q.get("kind") == "mcq"):
        choices = [c.strip().casefold() for c in q["choices"]]
        assert len(set(choices)) == len(choices), q["id"]
        assert choices.count(q["correct"].strip().casefold()) == 1, q["id"]


def test_fundamentals_come_first_in_a_study_plan(bank):
    assert next(iter(bank.topics)) == "fundamentals"
    assert bank.questions[0].topic == "fundamentals"
