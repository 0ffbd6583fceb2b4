"""`price-alchemy ui` starts the real Dagster webserver and daemon on 127.0.0.1, shows the assets
with their lineage, checks, versions, schedules and the eval report (plots and per-category table,
in headless Chromium), and stops cleanly on Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from price_alchemy_assets.devtools.local_servers import free_port
from price_alchemy_tests.conftest import run_cli
from price_alchemy_tests.serving import group_gone
from price_alchemy_tests.test_instances import ASSETS
from price_alchemy_tests.test_service import ARTIFACTS_ENV, CHROMIUM

QUERY = "{ assetNodes { assetKey { path } dependencyKeys { path } hasAssetChecks opVersion staleStatus } }"
AUTOMATION = """{
  repositoriesOrError { ... on RepositoryConnection { nodes { schedules { name scheduleState { status } } } } }
  champion: assetNodeOrError(assetKey: {path: ["champion"]}) { ... on AssetNode {
    internalFreshnessPolicy { ... on TimeWindowFreshnessPolicy { failWindowSeconds warnWindowSeconds } } } }
  table: assetNodeOrError(assetKey: {path: ["listings_table"]}) { ... on AssetNode { isObservable dataVersion } }
}"""


def graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.slow
def test_ui_shows_assets_with_lineage_and_stops_on_sigint(price_alchemy_home, tmp_path, tiny_run_config):
    listings = tmp_path / "listings.tsv"  # a trained pipeline first, so the pages have something to show
    assert run_cli("synth", "--rows", "3000", "--output", str(listings)).returncode == 0
    assert run_cli("ingest", str(listings)).returncode == 0
    trained = run_cli("train", "--config", str(tiny_run_config))
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
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
        assert set(by_key) == {*ASSETS, "drift_report", "online_evaluation", "listings_table"}
        assert by_key["tuned_model"]["dependencyKeys"] == [{"path": ["tfidf_features"]}]
        assert by_key["validated_listings"]["dependencyKeys"] == [{"path": ["raw_listings"]}]
        assert by_key["validated_listings"]["hasAssetChecks"]
        assert by_key["raw_listings"]["dependencyKeys"] == [{"path": ["listings_table"]}]
        # each asset's code version is its own code's, and nothing is stale right after a run
        versions = {by_key[key]["opVersion"] for key in ("raw_listings", "tfidf_features", "tuned_model", "champion")}
        assert len(versions) == 4 and all(by_key[key]["staleStatus"] == "FRESH" for key in ASSETS)
        automation = graphql(port, AUTOMATION)["data"]
        [repository] = automation["repositoriesOrError"]["nodes"]
        schedules = {s["name"]: s["scheduleState"]["status"] for s in repository["schedules"]}
        assert schedules == {
            "hourly_listings_observation": "RUNNING",
            "weekly_retraining": "STOPPED",
            "daily_online_evaluation": "RUNNING",
        }
        freshness = automation["champion"]["internalFreshnessPolicy"]
        assert freshness == {"failWindowSeconds": 14 * 86400, "warnWindowSeconds": 8 * 86400}
        assert automation["table"]["isObservable"] and automation["table"]["dataVersion"].startswith("3000@")
        eval_report_page_in_chromium(port, tmp_path)
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


def eval_report_page_in_chromium(port: int, tmp_path: Path) -> None:
    """The eval_report asset page shows the per-category table with the run's numbers, and its plots."""
    if not CHROMIUM.is_file():
        pytest.skip(f"Chromium not found at {CHROMIUM} (scripts/setup.sh --test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("eval_report"))
        table = event.asset_materialization.metadata["rmsle_by_category"]
    artifacts = Path(os.environ.get(ARTIFACTS_ENV) or tmp_path)
    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"http://127.0.0.1:{port}/assets/eval_report")
        skip = page.get_by_role("button", name="Skip")  # the UI's first-visit newsletter dialog
        skip.click(timeout=60_000)
        shown = page.locator("tr", has_text="rmsle_by_category")
        shown.wait_for(timeout=60_000)
        text = shown.inner_text()
        for record in table.records:
            row = record.data
            assert (
                row["category"] in text and f"{row['candidate']:.4g}" in text and f"{row['rules_baseline']:.4g}" in text
            )
        page.screenshot(path=str(artifacts / "eval-report-asset.png"), full_page=True)
        page.locator("tr", has_text="plots").get_by_text("[Show Markdown]").click()
        page.wait_for_selector("img[src^='data:image/png']", timeout=30_000)
        pictures = page.locator("img[src^='data:image/png']")
        sizes = [pictures.nth(i).evaluate("e => [e.alt, e.naturalWidth, e.naturalHeight]") for i in range(2)]
        assert sizes == [["predicted_vs_actual", 600, 600], ["rmsle_by_category", 800, 400]]  # drawn, not broken
        page.screenshot(path=str(artifacts / "eval-report-plots.png"))
        browser.close()
