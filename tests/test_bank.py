"""The question bank: the shipped content, validation messages, `dlprep bank check`, user banks,
the JSON cache, and looking questions up."""

from __future__ import annotations

import json
import marshal
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import dlprep.bank
from dlprep import paths
from dlprep.bank import load_bank, validate
from dlprep.cli import app
from dlprep.errors import BankError, NotFoundError

runner = CliRunner()

CONTENT = paths.builtin_content_dir()
SEEDS = Path(__file__).resolve().parents[1].parent / "shared" / "seeds"
INTERVIEW_SEED = "000_6bf5bb067515d57f.txt"

HEAD = "topic: t\ntitle: T\nquestions:\n"  # lines 1-3; the first question starts on line 4


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _open_question(qid: str, extra: str = "") -> str:
    """A valid open question as a YAML list item (4 lines, plus `extra`)."""
    return (
        f"  - id: {qid}\n"
        f"    prompt: What is {qid}?\n"
        f"    answer: The answer to {qid}.\n"
        f"    key_points: [point]\n"
        f"{extra}"
    )


def _bank_file(path: Path, topic: str, *qids: str, tags: dict[str, str] | None = None) -> Path:
    tags = tags or {}
    body = "".join(
        _open_question(q, extra=f"    tags: [{tags[q]}]\n" if q in tags else "") for q in qids
    )
    return _write(path, f"topic: {topic}\ntitle: Topic {topic}\nquestions:\n{body}")


def _shipped_files() -> list[Path]:
    return sorted(CONTENT.glob("*.yaml"))


def _shipped_questions() -> list[dict]:
    return [
        q
        for f in _shipped_files()
        for q in yaml.safe_load(f.read_text(encoding="utf-8"))["questions"]
    ]


# -- the shipped bank ------------------------------------------------------------------------


def test_shipped_bank_is_valid():
    assert _shipped_files(), f"no YAML files in {CONTENT}"
    bank, problems = validate([CONTENT])
    assert problems == []
    assert len(bank.questions) == len(_shipped_questions())


def test_shipped_ids_are_unique():
    ids = [q["id"] for q in _shipped_questions()]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    assert duplicates == []


@pytest.mark.parametrize("path", _shipped_files(), ids=lambda p: p.name)
def test_shipped_topic_is_file_stem(path):
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["topic"] == path.stem


def test_cited_sources_exist():
    if not SEEDS.is_dir():
        pytest.skip(f"{SEEDS} is absent")
    # The seed lines 41-45 are the interview questions themselves.
    seed_lines = (SEEDS / INTERVIEW_SEED).read_text(encoding="utf-8").splitlines()
    assert all(line.startswith("- ") for line in seed_lines[40:45])
    bad = []
    for q in _shipped_questions():
        for source in q.get("sources", []):
            name, _, line = source.rpartition(":")
            seed = SEEDS / name
            if not seed.is_file():
                bad.append(f"{q['id']}: {source}: no such seed file")
            elif not 1 <= int(line) <= len(seed.read_text(encoding="utf-8").splitlines()):
                bad.append(f"{q['id']}: {source}: line out of range")
    assert bad == []


def test_shipped_bank_has_auto_graded_kinds():
    bank = load_bank([CONTENT])
    assert any(q.kind == "mcq" for q in bank.questions)
    assert any(q.kind == "numeric" and q.generator for q in bank.questions)


# -- validation messages: file:line: field: message, one line each ---------------------------

BROKEN = {
    "mcq-correct-not-a-choice": (
        HEAD + "  - id: q-one\n"  # 4
        "    kind: mcq\n"  # 5
        "    choices: [a, b]\n"  # 6
        "    correct: c\n"  # 7
        "    prompt: Which?\n"
        "    answer: A\n"
        "    key_points: [k]\n",
        7,
        "questions[0] (q-one).correct",
        "'c'",
    ),
    "unknown-kind": (
        HEAD + "  - id: q-one\n"
        "    prompt: P?\n"
        "    kind: essay\n"  # 6
        "    answer: A\n"
        "    key_points: [k]\n",
        6,
        "questions[0] (q-one).kind",
        "mcq",
    ),
    "missing-answer": (
        HEAD + _open_question("q-one") + "  - id: q-two\n"  # 8
        "    prompt: P?\n"
        "    key_points: [k]\n",
        8,
        "questions[1] (q-two).answer",
        "required",
    ),
    "unknown-key": (
        HEAD + "  - id: q-one\n"
        "    prompt: P?\n"
        "    answer: A\n"
        "    key_points: [k]\n"
        "    promt: P?\n",  # 8
        8,
        "questions[0] (q-one).promt",
        "",
    ),
    "yaml-syntax": (
        HEAD + "  - id: q-one\n"
        "    prompt: a: b\n"  # 5
        "    answer: A\n",
        5,
        "(file)",
        "YAML syntax error",
    ),
    "numeric-without-value": (
        HEAD + "  - id: q-one\n"  # 4
        "    kind: numeric\n"
        "    prompt: How many?\n"
        "    answer: A\n"
        "    key_points: [k]\n",
        4,
        "questions[0] (q-one).value",
        "generator",
    ),
    "unknown-generator": (
        HEAD + "  - id: q-one\n"
        "    kind: numeric\n"
        "    prompt: How many?\n"
        "    generator: no-such-generator\n"  # 7
        "    answer: A\n"
        "    key_points: [k]\n",
        7,
        "questions[0] (q-one).generator",
        "no-such-generator",
    ),
    "placeholder-not-provided": (
        HEAD + "  - id: q-one\n"
        "    kind: numeric\n"
        "    generator: conv-output-size\n"  # 6
        '    prompt: "A {size}x{size} input and {depth} channels?"\n'
        "    answer: A\n"
        "    key_points: [k]\n",
        6,
        "questions[0] (q-one).generator",
        "depth",
    ),
    "top-level-list": (
        "- topic: t\n  title: T\n",
        1,
        "(file)",
        "mapping",
    ),
    "mcq-duplicate-choices": (
        HEAD + "  - id: q-one\n"
        "    kind: mcq\n"
        "    prompt: Which?\n"
        "    answer: A\n"
        "    key_points: [k]\n"
        "    choices: [a, b, a]\n"  # 9
        "    correct: a\n",
        9,
        "questions[0] (q-one).choices",
        "different",
    ),
    "bad-source": (
        HEAD + "  - id: q-one\n"
        "    prompt: P?\n"
        "    answer: A\n"
        "    key_points: [k]\n"
        "    sources:\n"
        '      - "000_6bf5bb067515d57f.txt:41"\n'
        '      - "000_6bf5bb067515d57f.txt"\n',  # 10
        10,
        "questions[0] (q-one).sources[1]",
        "",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_validation_error_names_file_line_and_field(case, tmp_path, monkeypatch):
    text, line, field, fragment = BROKEN[case]
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "bad.yaml", text)
    bank, problems = validate([Path("bad.yaml")])
    assert len(problems) == 1, problems
    problem = problems[0]
    assert "\n" not in problem
    prefix = f"bad.yaml:{line}: {field}: "
    assert problem.startswith(prefix), problem
    assert len(problem) > len(prefix)
    assert fragment.lower() in problem.lower()
    assert bank.questions == ()


def test_duplicate_id_across_files_names_the_first(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _bank_file(tmp_path / "bank" / "a.yaml", "a", "first", "shared-id")
    _bank_file(tmp_path / "bank" / "b.yaml", "b", "other", "shared-id")
    bank, problems = validate([Path("bank")])
    assert problems == [
        f"{Path('bank/b.yaml')}:8: id: duplicate id 'shared-id' (first at {Path('bank/a.yaml')}:8)"
    ]
    # The first definition is kept; the rest of the bank is still usable.
    assert [q.id for q in bank.questions] == ["first", "shared-id", "other"]
    assert bank.get("shared-id").topic == "a"


def test_topics_come_in_study_order_then_by_file_name(tmp_path):
    # b.yaml declares it comes first; a.yaml and c.yaml keep the default order (100).
    _bank_file(tmp_path / "a.yaml", "a", "a1")
    _write(
        tmp_path / "b.yaml",
        "topic: b\ntitle: Topic b\norder: 1\nquestions:\n" + _open_question("b1"),
    )
    _bank_file(tmp_path / "c.yaml", "c", "c1")
    bank = load_bank([tmp_path])
    assert [q.id for q in bank.questions] == ["b1", "a1", "c1"]
    assert list(bank.topics) == ["b", "a", "c"]


def test_every_problem_in_a_file_is_reported(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(
        tmp_path / "bad.yaml",
        HEAD + "  - id: q-one\n"
        "    kind: essay\n"  # 5
        "    prompt: P?\n"
        "    answer: A\n"
        "    key_points: [k]\n"
        "  - id: q-two\n"  # 9
        "    prompt: P?\n"
        "    key_points: [k]\n",
    )
    _, problems = validate([Path("bad.yaml")])
    assert [p.split(": ")[0:2] for p in problems] == [
        ["bad.yaml:5", "questions[0] (q-one).kind"],
        ["bad.yaml:9", "questions[1] (q-two).answer"],
    ]


# -- dlprep bank check -----------------------------------------------------------------------


def test_bank_check_valid(tmp_path):
    _bank_file(tmp_path / "bank" / "a.yaml", "a", "a-one", "a-two")
    _bank_file(tmp_path / "bank" / "sub" / "b.yml", "b", "b-one")
    result = runner.invoke(app, ["bank", "check", str(tmp_path / "bank")])
    assert result.exit_code == 0, result.output
    assert "3 questions in 2 topics (2 files)" in result.output
    assert "Traceback" not in result.output


def test_bank_check_default_is_the_shipped_bank():
    result = runner.invoke(app, ["bank", "check"])
    assert result.exit_code == 0, result.output
    count = len(_shipped_questions())
    assert f"{count} questions in {len(_shipped_files())} topics" in result.output


def test_bank_check_invalid_lists_each_problem(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "bank" / "one.yaml", BROKEN["mcq-correct-not-a-choice"][0])
    _write(tmp_path / "bank" / "two.yaml", BROKEN["unknown-generator"][0])
    _bank_file(tmp_path / "bank" / "zz-good.yaml", "good", "fine")
    result = runner.invoke(app, ["bank", "check", "bank"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.output.splitlines()
    one_at = f"{Path('bank/one.yaml')}:7: questions[0] (q-one).correct: "
    two_at = f"{Path('bank/two.yaml')}:7: questions[0] (q-one).generator: "
    one = [ln for ln in lines if one_at in ln]
    two = [ln for ln in lines if two_at in ln]
    assert len(one) == 1 and len(two) == 1, result.output
    assert "2 problem(s) in 3 file(s)" in result.output


def test_bank_check_missing_path(tmp_path):
    missing = tmp_path / "nowhere.yaml"
    result = runner.invoke(app, ["bank", "check", str(missing)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "nowhere.yaml" in result.output


def test_bank_check_yaml_syntax_error_has_no_traceback(tmp_path):
    bad = _write(tmp_path / "bad.yaml", BROKEN["yaml-syntax"][0])
    result = runner.invoke(app, ["bank", "check", str(bad)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "bad.yaml:5: (file): YAML syntax error" in result.output


# -- user banks ------------------------------------------------------------------------------


def _listed_ids(result) -> set[str]:
    assert result.exit_code == 0, result.output
    return {row["id"] for row in json.loads(result.output)}


@pytest.fixture
def builtin_ids() -> set[str]:
    return {q["id"] for q in _shipped_questions()}


def test_bank_option_file(tmp_path, builtin_ids):
    user = _bank_file(tmp_path / "mine.yaml", "mine", "my-question")
    ids = _listed_ids(runner.invoke(app, ["list", "--json", "--bank", str(user)]))
    assert ids == builtin_ids | {"my-question"}


def test_bank_option_folder_repeatable(tmp_path, builtin_ids):
    _bank_file(tmp_path / "mine" / "a.yaml", "mine", "my-a")
    _bank_file(tmp_path / "mine" / "deeper" / "b.yaml", "more", "my-b")
    other = _bank_file(tmp_path / "other.yaml", "other", "my-c")
    result = runner.invoke(
        app, ["list", "--json", "--bank", str(tmp_path / "mine"), "--bank", str(other)]
    )
    assert _listed_ids(result) == builtin_ids | {"my-a", "my-b", "my-c"}


def test_bank_env_var(tmp_path, monkeypatch, builtin_ids):
    import os

    _bank_file(tmp_path / "env" / "a.yaml", "env-topic", "env-q")
    second = _bank_file(tmp_path / "second.yaml", "second", "second-q")
    monkeypatch.setenv("DLPREP_BANK", f"{tmp_path / 'env'}{os.pathsep}{second}")
    ids = _listed_ids(runner.invoke(app, ["list", "--json"]))
    assert ids == builtin_ids | {"env-q", "second-q"}
    topic_only = runner.invoke(app, ["list", "--json", "--topic", "env-topic"])
    assert _listed_ids(topic_only) == {"env-q"}


def test_broken_user_bank_stops_list(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "bad.yaml", BROKEN["mcq-correct-not-a-choice"][0])
    result = runner.invoke(app, ["list", "--bank", "bad.yaml"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1, result.output
    assert "bad.yaml:7: questions[0] (q-one).correct" in lines[0]


def test_broken_env_bank_stops_list(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _write(tmp_path / "bad.yaml", BROKEN["unknown-kind"][0])
    monkeypatch.setenv("DLPREP_BANK", "bad.yaml")
    result = runner.invoke(app, ["list", "--json"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "bad.yaml:6: questions[0] (q-one).kind" in result.output


# -- the cache -------------------------------------------------------------------------------


def _refuse_validate(*args, **kwargs):
    raise AssertionError("the bank was parsed again instead of read from the cache")


def test_cache_is_written_and_used(tmp_path, monkeypatch):
    source = _bank_file(tmp_path / "bank.yaml", "t", "q-one", "q-two")
    cache = tmp_path / "cache"
    first = load_bank([source], cache_dir=cache)
    files = list(cache.glob("bank-*.marshal"))
    assert len(files) == 1
    monkeypatch.setattr(dlprep.bank, "validate", _refuse_validate)
    second = load_bank([source], cache_dir=cache)
    assert second.questions == first.questions
    assert second.topics == first.topics == {"t": "Topic t"}
    assert second.locations == first.locations


def test_cache_follows_edits(tmp_path, monkeypatch):
    source = _bank_file(tmp_path / "bank.yaml", "t", "q-one")
    cache = tmp_path / "cache"
    assert load_bank([source], cache_dir=cache).get("q-one").answer == "The answer to q-one."
    (old,) = cache.glob("bank-*.marshal")
    source.write_text(
        source.read_text().replace("The answer to q-one.", "A better answer."), encoding="utf-8"
    )
    edited = load_bank([source], cache_dir=cache)
    assert edited.get("q-one").answer == "A better answer."
    new = set(cache.glob("bank-*.marshal")) - {old}
    assert len(new) == 1
    # And the new entry is what a later load reads.
    monkeypatch.setattr(dlprep.bank, "validate", _refuse_validate)
    assert load_bank([source], cache_dir=cache).get("q-one").answer == "A better answer."


def test_corrupt_cache_is_rebuilt(tmp_path):
    source = _bank_file(tmp_path / "bank.yaml", "t", "q-one")
    cache = tmp_path / "cache"
    expected = load_bank([source], cache_dir=cache)
    (cache_file,) = cache.glob("bank-*.marshal")
    for garbage in (
        b"{not json",
        b'{"questions": [{"id": 3}]}',
        b'{"questions": {"id": 3}}',
        b"\xff\xfe\x00",
    ):
        cache_file.write_bytes(garbage)
        loaded = load_bank([source], cache_dir=cache)
        assert loaded.questions == expected.questions
        assert marshal.loads(cache_file.read_bytes())["questions"]["id"] == ["q-one"]


def test_invalid_bank_is_not_cached(tmp_path):
    bad = _write(tmp_path / "bad.yaml", BROKEN["unknown-kind"][0])
    cache = tmp_path / "cache"
    with pytest.raises(BankError) as info:
        load_bank([bad], cache_dir=cache)
    assert "bad.yaml:6: questions[0] (q-one).kind: " in info.value.problems[0]
    assert list(cache.glob("bank-*.marshal")) == []


# -- lookups ---------------------------------------------------------------------------------


@pytest.fixture
def small_bank(tmp_path):
    _bank_file(
        tmp_path / "b" / "alpha.yaml",
        "alpha",
        "alpha-one",
        "alpha-two",
        tags={"alpha-one": "shared", "alpha-two": "only-alpha"},
    )
    _bank_file(tmp_path / "b" / "beta.yaml", "beta", "beta-one", tags={"beta-one": "shared"})
    return load_bank([tmp_path / "b"])


def test_get_known_and_unknown(small_bank):
    assert small_bank.get("beta-one").topic == "beta"
    with pytest.raises(NotFoundError, match=re.escape("did you mean 'alpha-two'")):
        small_bank.get("alpha-tow")


def test_get_unknown_in_shipped_bank_suggests():
    bank = load_bank([CONTENT])
    with pytest.raises(NotFoundError) as info:
        bank.get("conv-output-widht")
    assert "'conv-output-width'" in str(info.value)


def test_select_unknown_topic(small_bank):
    with pytest.raises(NotFoundError, match="alpha"):
        small_bank.select(topics=["alpah"])


def test_select_by_topic_and_tag(small_bank):
    ids = lambda qs: [q.id for q in qs]  # noqa: E731
    assert ids(small_bank.select()) == ["alpha-one", "alpha-two", "beta-one"]
    assert ids(small_bank.select(topics=["alpha"])) == ["alpha-one", "alpha-two"]
    assert ids(small_bank.select(topics=["beta"])) == ["beta-one"]
    assert ids(small_bank.select(tags=["shared"])) == ["alpha-one", "beta-one"]
    assert ids(small_bank.select(tags=["only-alpha"])) == ["alpha-two"]
    assert ids(small_bank.select(topics=["beta"], tags=["shared"])) == ["beta-one"]
    assert ids(small_bank.select(topics=["beta"], tags=["only-alpha"])) == []


def test_a_folder_without_yaml_is_an_error_not_an_empty_bank(tmp_path):
    (tmp_path / "empty").mkdir()
    result = CliRunner().invoke(app, ["bank", "check", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "no YAML files" in result.output


def test_cached_locations_follow_the_current_folder(tmp_path, monkeypatch):
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "b.yaml").write_text(
        "topic: t\ntitle: T\nquestions:\n  - id: q-b\n    prompt: P?\n    answer: A.\n"
        "    key_points: [k]\n"
    )
    cache = tmp_path / "cache"
    monkeypatch.chdir(tmp_path)
    assert load_bank([sub], cache_dir=cache).location("q-b") == f"{Path('sub/b.yaml')}:4"
    monkeypatch.chdir(sub)
    assert load_bank([sub], cache_dir=cache).location("q-b") == "b.yaml:4"
