"""notebooks/explore.ipynb, run as an analyst would: committed without outputs, executed by a real
Jupyter kernel (nbclient) against a small trained home with a drift report, every table it shows
equal to the assets' own values; and `price-alchemy notebook` serves it from JupyterLab on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from price_alchemy_assets.defs.drift import DRIFT_REPORT, listings_and_traffic_drift_sensor
from price_alchemy_assets.defs.resources import resources_from_settings
from price_alchemy_assets.devtools.local_servers import free_port
from price_alchemy_assets.listings.synthetic import DriftKind, write_synthetic_listings
from price_alchemy_assets.monitoring.drift_watch import NEW_LISTINGS
from price_alchemy_assets.settings import load_settings

from .conftest import REPO, run_cli
from .serving import group_gone, wait_for

NOTEBOOK = REPO / "notebooks" / "explore.ipynb"


def test_the_notebook_is_committed_without_outputs():
    import nbformat

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(cell.outputs == [] and cell.execution_count is None for cell in code)


@pytest.fixture
def trained_home(price_alchemy_home, tmp_path, tiny_run_config):
    """A home with a champion, and a drift report the real sensor wrote about listings that came later."""
    listings = write_synthetic_listings(tmp_path / "listings.tsv", 3_000, seed=4)
    assert run_cli("ingest", str(listings)).returncode == 0
    trained = run_cli("train", "--config", str(tiny_run_config))
    assert trained.returncode == 0, trained.stdout[-3000:] + trained.stderr[-3000:]
    later = write_synthetic_listings(
        tmp_path / "later.tsv",
        800,
        seed=5,
        start=datetime.now(UTC) - timedelta(days=1),
        days=1,
        drift=DriftKind.NEW_BRANDS,
    )
    assert run_cli("ingest", str(later)).returncode == 0
    with dg.DagsterInstance.get() as instance:
        with dg.build_sensor_context(instance=instance, resources=resources_from_settings(load_settings())) as context:
            result = listings_and_traffic_drift_sensor(context)
        for event in result.asset_events:  # stored as the daemon stores a tick's events
            instance.report_runless_asset_event(event)
    return price_alchemy_home


def _outputs(executed, tag: str) -> list[dict]:
    [cell] = [cell for cell in executed.cells if tag in cell.metadata.get("tags", [])]
    return cell.outputs


def _text(outputs: list[dict]) -> str:
    return "".join(o["text"] for o in outputs if o["output_type"] == "stream" and o["name"] == "stdout")


def _as_shown(frame: pd.DataFrame) -> str:
    """A frame's text as a kernel shows it (pandas' defaults where no terminal is attached)."""
    with pd.option_context("display.max_columns", 20, "display.width", 80):
        return repr(frame)


def _result(outputs: list[dict], kind: str = "text/plain") -> str:
    [shown] = [o["data"][kind] for o in outputs if o["output_type"] == "execute_result"]
    return shown


def test_the_notebook_shows_the_assets_values(trained_home):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # the kernel inherits this process's environment: DAGSTER_HOME is the trained home
    executed = NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}
    ).execute()

    from price_alchemy_assets.definitions import defs as imported

    # the code location as the kernel built it: resources from this test's environment (an import
    # earlier in the session read another DAGSTER_HOME)
    defs = dg.Definitions(assets=list(imported.assets), resources=resources_from_settings(load_settings()))

    with dg.DagsterInstance.get() as instance:
        assert f"Dagster home: {trained_home}" in _text(_outputs(executed, "setup"))
        validated = defs.load_asset_value("validated_listings", instance=instance)
        listed = instance.get_latest_materialization_event(dg.AssetKey("rejected_listings"))
        rejected_rows = listed.asset_materialization.metadata["dagster/row_count"].value
        counted = f"{len(validated):,} valid listings, {rejected_rows:,} rejected\n"
        assert _text(_outputs(executed, "listings")) == counted
        assert len(validated) == 3_000 - rejected_rows

        labelled = validated[validated["price"].notna()]
        category = labelled["category_name"].fillna("(none)").str.split("/").str[0].rename("category")
        expected = labelled.pivot_table(index=category, columns="item_condition_id", values="price", aggfunc="median")
        prices = _outputs(executed, "prices")
        assert _result(prices) == _as_shown(expected)
        assert any("image/png" in o.get("data", {}) for o in prices)  # the bar chart

        evaluation = defs.load_asset_value("eval_report", instance=instance)
        shown = _outputs(executed, "evaluation")
        assert _text(shown) == f"candidate {evaluation['candidate_version']}, champion then: None\n"
        assert _result(shown) == _as_shown(pd.DataFrame(evaluation["metrics"]).T)
        [plots] = [o["data"]["text/markdown"] for o in shown if o["output_type"] == "display_data"]
        pictures = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)\)", plots)
        assert len(pictures) == 2 and all(base64.b64decode(p).startswith(b"\x89PNG") for p in pictures)

        reports = [r.asset_materialization for r in instance.fetch_materializations(DRIFT_REPORT, limit=10).records]
        by_source = {report.metadata["source"].value: report for report in reversed(reports)}  # the latest wins
        assert by_source[NEW_LISTINGS].metadata["new_listings"].value == 800
        assert "unseen brands" in by_source[NEW_LISTINGS].description
        said = _outputs(executed, "drift")
        ordered = [by_source[source] for source in sorted(by_source)]  # live traffic, then new listings
        assert _text(said) == "".join(f"{report.description}\n" for report in ordered)
        shown = [o["data"]["text/markdown"] for o in said if o["output_type"] == "display_data"]
        assert shown == [report.metadata["report"].value for report in ordered]


def test_price_alchemy_notebook_serves_it_from_jupyterlab_on_localhost(price_alchemy_home, tmp_path):
    port, token = free_port(), "test-token"
    log = tmp_path / "jupyter.log"
    cli = Path(sys.executable).with_name("price-alchemy")
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(cli), "notebook", "--port", str(port), "--no-browser"],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=os.environ | {"JUPYTER_TOKEN": token},
        )
    try:

        def contents() -> dict | None:
            assert process.poll() is None, log.read_text()[-3000:]
            url = f"http://127.0.0.1:{port}/api/contents/explore.ipynb?token={token}"
            try:
                with urllib.request.urlopen(url, timeout=10) as response:
                    return json.loads(response.read())
            except OSError:
                return None

        served = wait_for(contents, timeout=120, what="JupyterLab to serve the notebook", log=log, every=1)
        assert served["type"] == "notebook" and served["content"]["cells"][0]["source"].startswith("# Exploring")
        assert f"JupyterLab on http://127.0.0.1:{port}" in log.read_text()
        with pytest.raises(OSError):  # bound to 127.0.0.1 only
            urllib.request.urlopen(f"http://{_outside_address()}:{port}/api/status", timeout=3)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
        assert group_gone(process.pid), "JupyterLab or its kernels outlived the command"


def _outside_address() -> str:
    """This machine's address on its network (not loopback)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing interface
        return probe.getsockname()[0]
