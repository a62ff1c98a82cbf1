"""Every demo runs in quick mode and every claim it makes holds (several seeds where the
effect is statistical); the demo command's contract (JSON, exit codes, errors, no torch for
--list); every demo a question links to exists."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from dlprep import demos
from dlprep.cli import app
from dlprep.demos._core import DemoResult

QUICK_LIMIT_S = 15.0  # the bound for --quick on a 2-core CPU
SINGLE_PROCESS = [d for d in demos.available().values() if not d.distributed]


def _cases():
    for info in SINGLE_PROCESS:
        for seed in (0, 1, 2) if info.statistical else (0,):
            yield pytest.param(info.id, seed, id=f"{info.id}-seed{seed}")


@pytest.mark.parametrize(("demo_id", "seed"), list(_cases()))
def test_demo_claims_hold_in_quick_mode_on_cpu(demo_id, seed):
    report = demos.run(demo_id, device="cpu", seed=seed, quick=True)
    failed = [f"{c.text} ({c.detail})" for c in report.result.claims if not c.holds]
    assert report.result.claims, f"{demo_id} makes no claims"
    assert not failed, f"{demo_id} seed {seed}: " + "; ".join(failed)
    assert report.seconds < QUICK_LIMIT_S, f"{demo_id} took {report.seconds:.1f} s in quick mode"
    json.dumps(report.to_json())  # everything it reports is JSON-serialisable


@pytest.mark.gpu
@pytest.mark.parametrize("demo_id", [d.id for d in SINGLE_PROCESS])
def test_demo_claims_hold_on_cuda(demo_id):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    report = demos.run(demo_id, device="cuda", seed=0, quick=True)
    failed = [f"{c.text} ({c.detail})" for c in report.result.claims if not c.holds]
    assert report.device == "cuda" and not failed, failed


def test_every_demo_has_a_summary_and_a_run_function():
    import importlib

    assert len(SINGLE_PROCESS) >= 1
    for info in demos.available().values():
        assert info.summary, f"{info.id}: the module docstring's first line is its summary"
        assert callable(importlib.import_module(info.module).run)


def test_every_linked_demo_exists():
    from dlprep.bank import load_bank
    from dlprep.paths import builtin_content_dir

    linked = {q.demo for q in load_bank([builtin_content_dir()]).questions if q.demo}
    assert linked <= set(demos.available()), linked - set(demos.available())


def test_demo_json_has_the_documented_shape():
    result = CliRunner().invoke(app, ["demo", "backprop-by-hand", "--quick", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert {"demo", "device", "seconds", "metrics", "claims"} <= set(data)
    assert data["demo"] == "backprop-by-hand" and data["device"] == "cpu"
    assert all(set(c) >= {"text", "holds"} and c["holds"] for c in data["claims"])


def test_demo_prints_its_claims_and_exit_code_follows_them():
    result = CliRunner().invoke(app, ["demo", "backprop-by-hand", "--quick"])
    assert result.exit_code == 0
    assert "✓ The hand-written chain rule gives exactly autograd's gradients" in result.output
    assert "claims hold" in result.output
    empty = DemoResult()
    assert not empty.all_hold  # a demo that claims nothing has shown nothing
    empty.claim("holds", True)
    empty.claim("does not", False)
    assert not empty.all_hold


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "backprop-by-hnd"], "did you mean backprop-by-hand"),
        (["demo", "backprop-by-hand", "--device", "tpu"], "unknown device 'tpu'"),
    ],
)
def test_demo_bad_input_is_one_line(args, message):
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and message in result.output
    assert len(result.stderr.strip().splitlines()) == 1


def test_cuda_without_a_gpu_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    result = CliRunner().invoke(app, ["demo", "backprop-by-hand", "--device", "cuda"])
    assert result.exit_code == 1 and "no CUDA GPU is available" in result.output


def test_demo_list_names_each_demo_and_the_questions_linking_to_it():
    result = CliRunner().invoke(app, ["demo", "--list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["id"]: row for row in json.loads(result.stdout)}
    assert set(rows) == set(demos.available())
    assert "backprop-step-by-step" in rows["backprop-by-hand"]["questions"]
    assert all(row["summary"] for row in rows.values())


def test_bank_check_rejects_a_demo_that_does_not_exist(tmp_path):
    bank = tmp_path / "b.yaml"
    bank.write_text(
        "topic: t\ntitle: T\nquestions:\n  - id: q\n    prompt: P?\n    answer: A.\n"
        "    key_points: [k]\n    demo: backprop-by-hnd\n"
    )
    result = CliRunner().invoke(app, ["bank", "check", str(bank)])
    assert result.exit_code == 1
    assert "b.yaml:8: questions[0] (q).demo: no demo 'backprop-by-hnd'" in result.output
    assert "did you mean 'backprop-by-hand'" in result.output
