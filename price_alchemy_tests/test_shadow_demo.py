"""The shadow demo as a user runs it, on small data and a tiny tuning budget: a weak champion, a
challenger the gate keeps out, dagster dev (the real webserver and daemon) and the service scoring
the challenger in shadow, sellers, their listings arriving with prices, online_evaluation's
verdict, the sensor's promotion run, the service answering with the new champion, and every
process stopped."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .serving import group_gone

REPO = Path(__file__).resolve().parents[1]
DEMO_TIMEOUT_SECONDS = 780


@pytest.mark.slow
def test_the_challenger_in_shadow_wins_on_realized_prices_and_is_promoted(tmp_path):
    summary_path = tmp_path / "summary.json"
    args = ["--workdir", str(tmp_path / "demo"), "--rows", "1500", "--more-rows", "8000", "--traffic-rows", "500"]
    command = [sys.executable, str(REPO / "scripts" / "shadow_demo.py"), *args, "--max-evals", "2"]
    try:
        done = subprocess.run(
            [*command, "--summary", str(summary_path)], capture_output=True, text=True, timeout=DEMO_TIMEOUT_SECONDS
        )
    except subprocess.TimeoutExpired as stuck:
        pytest.fail(f"the shadow demo ran over {DEMO_TIMEOUT_SECONDS} s:\n{stuck.stdout!r}\n{stuck.stderr!r}")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = json.loads(summary_path.read_text())
    champion, challenger = summary["champion"]["version"], summary["challenger"]["version"]
    # sellers saw only the champion's prices; the challenger priced every one of them in shadow
    assert summary["served"]["answered_by"] == [champion]
    assert summary["served"]["shadow"]["scored"] == 500 and summary["served"]["shadow"]["skipped"] == 0
    verdict = summary["online_evaluation"]
    assert verdict["status"] == "SUCCESS" and verdict["challenger_verdict"] == "promote"
    assert verdict["challenger_version"] == challenger and verdict["challenger_p_value"] < 0.05
    assert verdict["challenger_paired_rmsle"] < verdict["champion_paired_rmsle"]
    assert summary["promotion_run"]["status"] == "SUCCESS"
    assert summary["after"]["model_version"] == challenger
    assert all(group_gone(group) for group in summary["process_groups"])
