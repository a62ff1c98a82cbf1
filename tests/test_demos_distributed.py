"""Distributed demos: real collectives over gloo on CPU, launched as processes (and by torchrun);
failing and hung ranks end the run with a clear error, in bounded time, leaving no process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dlprep import demos
from dlprep.demos import _dist
from dlprep.errors import DlprepError

DISTRIBUTED = [d for d in demos.available().values() if d.distributed]
FOUR_RANKS = {"fsdp-sharding", "zero-stages"}
FIXTURES = Path(__file__).parent / "dist_fixtures"
FAULTY = "dlprep_test_rank_faults"


def _cases():
    for info in DISTRIBUTED:
        for nproc in (2, 4) if info.id in FOUR_RANKS else (2,):
            yield pytest.param(info.id, nproc, id=f"{info.id}-{nproc}ranks")


@pytest.mark.parametrize(("demo_id", "nproc"), list(_cases()))
def test_distributed_demo_claims_hold_on_cpu(demo_id, nproc):
    start = time.monotonic()
    report = demos.run(demo_id, device="cpu", quick=True, nproc=nproc)
    failed = [f"{c.text} ({c.detail})" for c in report.result.claims if not c.holds]
    assert report.result.claims and not failed, failed
    assert report.device == f"gloo×{nproc}"
    assert time.monotonic() - start < 30, "quick mode must finish in 30 s"


@pytest.mark.gpu
@pytest.mark.parametrize("demo_id", [d.id for d in DISTRIBUTED])
def test_distributed_demo_on_gpus(demo_id):
    import torch

    if not torch.cuda.is_available() or torch.cuda.device_count() < 2:
        pytest.skip("needs 2 GPUs")
    report = demos.run(demo_id, device="cuda", quick=True, nproc=2)
    assert report.device == "nccl×2" and report.result.all_hold


def test_torchrun_runs_the_same_demo():
    torchrun = Path(sys.executable).with_name("torchrun")
    done = subprocess.run(
        [str(torchrun), "--nproc_per_node", "2", "-m", "dlprep.demos.ddp", "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["demo"] == "ddp" and report["device"] == "gloo×2"
    assert all(c["holds"] for c in report["claims"])


@pytest.fixture
def faulty(monkeypatch):
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(FIXTURES), os.environ.get("PYTHONPATH", "")])
    )

    def run(fault: str, **kwargs):
        monkeypatch.setenv("DLPREP_TEST_FAULT", fault)
        return _dist.launch(FAULTY, 2, device="cpu", quick=True, **kwargs)

    yield run
    stray = subprocess.run(["pgrep", "-f", FAULTY], capture_output=True, text=True).stdout
    assert not stray.strip(), f"processes left behind: {stray}"


def test_a_failing_rank_is_a_one_line_error_naming_it(faulty):
    with pytest.raises(
        DlprepError, match=r"rank 1 failed \(exit code 1: RuntimeError: rank one exploded"
    ):
        faulty("raise")


def test_a_hung_rank_ends_the_demo_within_the_collective_timeout(faulty):
    start = time.monotonic()
    with pytest.raises(DlprepError, match="rank 0 failed"):
        faulty("hang", collective_timeout_s=3)
    assert time.monotonic() - start < 30


def test_a_failed_claim_is_a_result_not_a_crash(faulty):
    report = faulty("claim-fails")
    assert [c.holds for c in report.result.claims] == [True, False]


def test_a_rank_dying_after_its_work_is_done_does_not_spoil_the_result(faulty):
    report = faulty("abort-at-exit")
    assert report.result.all_hold
    assert any(
        "rank 1 completed its work, then exited with killed by signal SIGABRT" in n
        for n in report.result.notes
    )


def test_nproc_is_only_for_distributed_demos():
    from dlprep.errors import UsageError

    with pytest.raises(UsageError, match="--nproc is for the distributed demos"):
        demos.run("backprop-by-hand", quick=True, nproc=2)
