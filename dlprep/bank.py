"""Load question banks: YAML topic files -> validated `Question`s, cached by the files' content.

Parsing and validating YAML is slow (about 1.3 s for 5,000 questions even with libyaml), so
the validated bank is cached as JSON under the data directory, keyed by a hash of every
file's path and bytes; any edit rebuilds it. Errors name file:line and the field.
"""

from __future__ import annotations

import difflib
import gc
import hashlib
import marshal
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from dlprep import __version__
from dlprep.errors import BankError, NotFoundError
from dlprep.generators import GENERATORS
from dlprep.questions import Question

if TYPE_CHECKING:
    from pydantic import ValidationError

    from dlprep.schema import TopicFile

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
CACHE_FORMAT = 5
# The cache is marshal, the format of Python's own .pyc files: it loads in half the time of
# the same data as JSON (0.11 s vs 0.24 s for 100,000 questions), and like __pycache__ it is
# a private file that dlprep wrote itself.
CACHE_SUFFIX = ".marshal"
BANK_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Bank:
    questions: tuple[Question, ...]
    topics: dict[str, str]  # slug -> title, in the order first seen
    locations: dict[str, str] = field(default_factory=dict)  # id -> "/abs/file.yaml:line"

    @cached_property
    def by_id(self) -> dict[str, Question]:
        return {q.id: q for q in self.questions}

    @cached_property
    def tags(self) -> set[str]:
        return {tag for q in self.questions for tag in q.tags}

    def location(self, question_id: str) -> str:
        """Where a question is written, as "file:line" relative to the current folder."""
        where = self.locations.get(question_id)
        return bank_location(where) if where else ""

    def get(self, question_id: str) -> Question:
        try:
            return self.by_id[question_id]
        except KeyError:
            raise NotFoundError(
                f"no question with id {question_id!r}{_suggest(question_id, self.by_id)}"
            ) from None

    def select(self, topics: Sequence[str] = (), tags: Sequence[str] = ()) -> list[Question]:
        """Questions in any of `topics` (all if none) having any of `tags` (all if none)."""
        for topic in topics:
            if topic not in self.topics:
                raise NotFoundError(f"no topic {topic!r}{_suggest(topic, self.topics)}")
        for tag in tags:
            if tag not in self.tags:
                raise NotFoundError(f"no tag {tag!r}{_suggest(tag, self.tags)}")
        return [
            q
            for q in self.questions
            if (not topics or q.topic in topics) and (not tags or set(tags) & set(q.tags))
        ]


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    return f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def bank_files(paths: Sequence[Path]) -> list[Path]:
    """Expand folders into their YAML files (sorted, recursively); a missing path is an error."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in BANK_SUFFIXES)
            if not found:
                raise BankError([f"{path}: no YAML files in this folder"])
            files.extend(found)
        elif path.is_file():
            if path.suffix not in BANK_SUFFIXES:
                raise BankError(
                    [f"{path}: not a YAML file (expected {' or '.join(BANK_SUFFIXES)})"]
                )
            files.append(path)
        else:
            raise BankError([f"{path}: no such file or folder"])
    return files


def bank_location(where: str) -> str:
    """ "/abs/file.yaml:12" -> "file.yaml:12" relative to the current folder where possible."""
    path, _, line = where.rpartition(":")
    return f"{_display(Path(path))}:{line}"


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _node_lines(node: yaml.Node | None, path: tuple = (), out: dict | None = None) -> dict:
    """Map each path in the document (('questions', 3, 'correct')) to its 1-based line."""
    out = {} if out is None else out
    if node is None:
        return out
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[path + (key,)] = key_node.start_mark.line + 1
            _node_lines(value_node, path + (key,), out)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _node_lines(item, path + (index,), out)
    return out


def _parse_yaml(text: str) -> tuple[Any, dict]:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return data, _node_lines(node)


def _field_path(loc: tuple, data: Any) -> str:
    parts: list[str] = []
    for i, part in enumerate(loc):
        if isinstance(part, int):
            parts[-1] += f"[{part}]"
            if loc[i - 1 : i] == ("questions",):
                try:
                    parts[-1] += f" ({data['questions'][part]['id']})"
                except (KeyError, IndexError, TypeError):
                    pass
        else:
            parts.append(str(part))
    return ".".join(parts) or "(file)"


def _validation_problems(err: ValidationError, shown: str, data: Any, lines: dict) -> list[str]:
    from dlprep.schema import QuestionSpec

    problems = []
    for e in err.errors(include_url=False):
        loc = tuple(e["loc"])
        msg = e["msg"].removeprefix("Value error, ")
        # Cross-field checks name their field first ("choices: ..."): point at that field.
        head, sep, rest = msg.partition(": ")
        if sep and head in QuestionSpec.model_fields and (not loc or loc[-1] != head):
            loc, msg = loc + (head,), rest
        line = next((lines[loc[:n]] for n in range(len(loc), -1, -1) if loc[:n] in lines), 1)
        problems.append(f"{shown}:{line}: {_field_path(loc, data)}: {msg}")
    return problems


def parse_file(path: Path) -> tuple[TopicFile | None, dict[str, int], list[str]]:
    """Parse and validate one topic file: (model or None, id -> line, problems)."""
    # pydantic is imported only here: validating YAML needs it, loading the cache does not.
    from pydantic import ValidationError

    from dlprep.schema import TopicFile

    shown = _display(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return None, {}, [f"{shown}:1: (file): cannot read: {exc}"]
    try:
        data, lines = _parse_yaml(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        return None, {}, [f"{shown}:{line}: (file): YAML syntax error: {exc.problem or exc}"]
    except yaml.YAMLError as exc:
        return None, {}, [f"{shown}:1: (file): YAML error: {exc}"]
    if not isinstance(data, dict):
        return None, {}, [f"{shown}:1: (file): expected a mapping with topic, title and questions"]
    try:
        topic_file = TopicFile.model_validate(data)
    except ValidationError as err:
        return None, {}, _validation_problems(err, shown, data, lines)
    id_lines = {
        q.id: lines.get(("questions", i, "id"), 1) for i, q in enumerate(topic_file.questions)
    }
    from dlprep.demos import available  # reads the demo files' names; imports no torch

    demos = available()
    problems = [
        f"{shown}:{lines.get(('questions', i, 'demo'), 1)}: "
        f"{_field_path(('questions', i, 'demo'), data)}: "
        f"no demo {q.demo!r}{_suggest(q.demo, demos)}"
        for i, q in enumerate(topic_file.questions)
        if q.demo and q.demo not in demos
    ]
    return (None, {}, problems) if problems else (topic_file, id_lines, [])


def validate(paths: Sequence[Path]) -> tuple[Bank, list[str]]:
    """Validate every file; returns the bank of the valid files and every problem found."""
    problems: list[str] = []
    questions: list[Question] = []
    topics: dict[str, str] = {}
    locations: dict[str, str] = {}
    parsed = []
    for path in bank_files(paths):
        topic_file, id_lines, file_problems = parse_file(path)
        problems.extend(file_problems)
        if topic_file is not None:
            parsed.append((topic_file, id_lines, path))
    # Study order: topics by their `order`, then as the files came (sorted by name).
    parsed.sort(key=lambda item: item[0].order)
    for topic_file, id_lines, path in parsed:
        topics.setdefault(topic_file.topic, topic_file.title)
        for spec in topic_file.questions:
            q = Question.from_dict(spec.model_dump())
            where = f"{path.resolve()}:{id_lines[q.id]}"
            if q.id in locations:
                first = bank_location(locations[q.id])
                problems.append(
                    f"{bank_location(where)}: id: duplicate id {q.id!r} (first at {first})"
                )
                continue
            locations[q.id] = where
            questions.append(q)
    return Bank(tuple(questions), topics, locations), problems


def _cache_key(files: Sequence[Path]) -> str:
    # marshal's format belongs to the Python version: it is part of the key.
    tag = f"{CACHE_FORMAT}\0{__version__}\0{sys.implementation.cache_tag}\0{marshal.version}"
    digest = hashlib.sha256(f"{tag}\0{sorted(GENERATORS)}".encode())
    for path in files:
        digest.update(str(path.resolve()).encode() + b"\0")
        try:
            digest.update(path.read_bytes())
        except OSError:
            digest.update(b"<unreadable>")
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def load_bank(paths: Sequence[Path], cache_dir: Path | None = None) -> Bank:
    """Load and validate the banks at `paths`; raise BankError listing every problem."""
    files = bank_files(paths)
    cache_file = cache_dir / f"bank-{_cache_key(files)}{CACHE_SUFFIX}" if cache_dir else None
    if cache_file is not None and cache_file.is_file():
        try:
            with _no_gc():
                cached = marshal.loads(cache_file.read_bytes())
                questions = Question.from_columns(cached["questions"])
            return Bank(questions, cached["topics"], cached["locations"])
        except (OSError, ValueError, EOFError, TypeError, KeyError, AttributeError, IndexError):
            pass  # a damaged cache is rebuilt below (its key already guards against staleness)
    bank, problems = validate(files)
    if problems:
        raise BankError(problems)
    if cache_file is not None:
        _write_cache(cache_file, bank)
    return bank


@contextmanager
def _no_gc() -> Iterator[None]:
    """Pause the cycle collector while building many objects that hold no cycles.

    Each of the thousands of tuples made while loading would otherwise count towards a
    collection, and full collections rescan everything built so far (~30% of the load time
    of a 100,000-question bank, measured by benchmarks/study_loop.py).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _write_cache(cache_file: Path, bank: Bank) -> None:
    """Write atomically (another dlprep may read it at the same moment); caching is best effort."""
    import tempfile

    payload = {
        "questions": Question.to_columns(bank.questions),
        "topics": bank.topics,
        "locations": bank.locations,
    }
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=cache_file.parent, prefix=".bank-", suffix=".tmp")
        with os.fdopen(fd, "wb") as out:
            out.write(marshal.dumps(payload))
        os.replace(tmp, cache_file)
        caches = cache_file.parent.glob(f"bank-*{CACHE_SUFFIX}")
        for old in sorted(caches, key=lambda p: p.stat().st_mtime)[:-8]:
            old.unlink(missing_ok=True)
    except OSError:
        pass


def dump_question(question: Question) -> dict[str, Any]:
    """A question as plain data (for --json output), without empty optional fields."""
    return {"kind": question.kind, **question.to_dict()}
