"""`price-alchemy ui` starts the real Dagster webserver and daemon on 127.0.0.1, shows the assets
with their lineage and checks, and stops cleanly on Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from price_alchemy_tests.bqemulator.server import free_port
from price_alchemy_tests.serving import group_gone
from price_alchemy_tests.test_instances import ASSETS

QUERY = "{ assetNodes { assetKey { path } dependencyKeys { path } hasAssetChecks } }"


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_ui_shows_assets_with_lineage_and_stops_on_sigint(price_alchemy_home, tmp_path):
    port = free_port()
    log = tmp_path / "ui.log"
    cli = Path(sys.executable).with_name("price-alchemy")
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(cli), "ui", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=os.environ.copy(),
        )
    try:
        deadline = time.monotonic() + 180
        nodes = None
        while time.monotonic() < deadline and nodes is None:
            assert process.poll() is None, log.read_text()[-3000:]
            try:
                nodes = graphql(port, QUERY)["data"]["assetNodes"]
            except (OSError, KeyError, TypeError):
                time.sleep(1)
        assert nodes is not None, log.read_text()[-3000:]
        by_key = {"/".join(node["assetKey"]["path"]): node for node in nodes}
        assert set(by_key) == {*ASSETS, "drift_report"}
        assert by_key["tuned_model"]["dependencyKeys"] == [{"path": ["tfidf_features"]}]
        assert by_key["validated_listings"]["dependencyKeys"] == [{"path": ["raw_listings"]}]
        assert by_key["validated_listings"]["hasAssetChecks"]
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            pytest.fail("dagster dev did not stop on SIGINT")
        if not group_gone(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("the webserver or daemon outlived dagster dev")
