"""The drift demo as a user runs it, on small data and a tiny tuning budget: dagster dev (the
real webserver and daemon) and the service start, an in-distribution batch triggers nothing, a
drifted batch triggers a retraining run that promotes a new champion, the service serves it,
and every process stops."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .serving import group_gone

REPO = Path(__file__).resolve().parents[1]
DEMO_TIMEOUT_SECONDS = 780


def _text(output: bytes | str) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output


@pytest.mark.slow
def test_drifted_batch_retrains_promotes_and_reaches_the_service(tmp_path):
    summary_path = tmp_path / "summary.json"
    args = ["--workdir", str(tmp_path / "demo"), "--rows", "3000", "--batch-rows", "1500", "--max-evals", "2"]
    command = [sys.executable, str(REPO / "scripts" / "drift_demo.py"), *args, "--tick-seconds", "5"]
    try:
        # below pytest's own 900 s, so a stuck demo fails here with its output rather than in pytest's dump
        done = subprocess.run(
            [*command, "--summary", str(summary_path)], capture_output=True, text=True, timeout=DEMO_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired as stuck:
        tails = [(stream or b"")[-3000:] for stream in (stuck.stdout, stuck.stderr)]
        pytest.fail(f"the drift demo ran over {DEMO_TIMEOUT_SECONDS} s:\n" + "\n".join(map(_text, tails)))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    calm = summary["in_distribution_tick"]
    assert calm["status"] == "SKIPPED" and not calm["runIds"] and "no drift" in calm["skipReason"]
    run = summary["retraining_run"]
    online = summary["online_evaluation_run"]
    assert sorted(summary["drift_tick"]["runIds"]) == sorted([run["run_id"], online["run_id"]])
    assert run["status"] == "SUCCESS" and online["status"] == "SUCCESS"
    assert "unseen categories" in run["drift_reasons"]
    second = summary["second_champion"]
    assert second["version"] == run["run_id"] != summary["first_champion"]["version"]
    assert summary["served"]["model_version"] == second["version"] and summary["served"]["price"] > 0
    assert "stopped dagster dev (exit 0, none left behind)" in done.stdout  # webserver, daemon, code server
    assert "stopped the service (exit 0, none left behind)" in done.stdout
    assert all(group_gone(group, within_seconds=1) for group in summary["process_groups"])
