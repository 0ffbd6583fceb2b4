"""`price-alchemy` as a user runs it: synth, ingest, status, materialize, demo, and bad input."""

from __future__ import annotations

import gzip
import re
import subprocess
import sys
import time
import zipfile

import dagster as dg
import pytest

from price_alchemy_assets.warehouse.duckdb_backend import DuckDBWarehouse

from .conftest import run_cli
from .platform_run import TINY

HEADER = "train_id\tname\titem_condition_id\tcategory_name\tbrand_name\tprice\tshipping\titem_description\n"
ROW = "{id}\tNike Air Max size 9\t3\tMen/Shoes/Athletic\tNike\t40.0\t1\tWorn twice\n"


def stored_rows(home) -> int:
    return DuckDBWarehouse(home / "data" / "warehouse.duckdb").count_listings()


def test_synth_ingest_status_materialize(price_alchemy_home, tmp_path, tiny_run_config):
    listings = tmp_path / "market.tsv.gz"
    synth = run_cli("synth", "--rows", "3000", "--seed", "2", "--output", str(listings))
    assert synth.returncode == 0, synth.stderr
    assert f"wrote 3,000 listings to {listings}" in synth.stdout

    first = run_cli("ingest", str(listings))
    again = run_cli("ingest", str(listings))
    assert first.returncode == 0 and again.returncode == 0, first.stderr + again.stderr
    assert "3,000 rows read, 3,000 new, 0 already stored" in first.stdout
    assert "3,000 rows read, 0 new, 3,000 already stored" in again.stdout

    status = run_cli("status")
    assert "listings: 3000" in status.stdout

    run = run_cli("materialize", "--config", str(tiny_run_config))
    assert run.returncode == 0, run.stdout + run.stderr
    assert "succeeded" in run.stdout
    assert "materialized validated_listings" in run.stdout
    assert "check validated_listings:rejected_share" in run.stdout
    with dg.DagsterInstance.get() as instance:  # the run is in DAGSTER_HOME, where the UI looks
        assert instance.get_latest_materialization_event(dg.AssetKey("validated_listings")) is not None


def test_demo_runs_the_main_job(price_alchemy_home, tiny_run_config):
    result = run_cli("demo", "--rows", "2000", "--config", str(tiny_run_config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "materialized raw_listings" in result.stdout and "2,000 rows" in result.stdout
    assert "http://127.0.0.1:3000" in result.stdout and "mlflow ui --backend-store-uri" in result.stdout
    assert "materialized champion" in result.stdout
    assert stored_rows(price_alchemy_home) == 2000
    # progress as it goes: every step starts, then ends with its time, in order; the trials are counted
    lines = result.stdout.splitlines()
    steps = ["raw_listings", "validated_and_rejected_listings", "tfidf_features", "tuned_model", "eval_report"]
    starts = [lines.index(f"  {step} started") for step in [*steps, "champion"]]
    assert starts == sorted(starts)
    for step, start in zip([*steps, "champion"], starts, strict=True):
        ended = next(line for line in lines[start + 1 :] if line.startswith(f"  {step} "))
        assert re.fullmatch(rf"  {step} done in \d+\.\d s", ended), ended
    budget = TINY["budget"]
    search = lines.index(f"    LightGBM search (at most {budget['max_evals']} trials, {budget['timeout_seconds']} s)")
    trials = [line for line in lines if line.startswith("    trial ")]
    assert lines.index(trials[0]) == search + 1 and len(trials) == budget["max_evals"]
    for number, line in enumerate(trials, start=1):
        of = f"    trial {number} of {budget['max_evals']}: "
        expected = re.escape(of) + r"validation RMSLE 0\.\d{4} \(best so far 0\.\d{4}, \d+ s\)"
        assert re.fullmatch(expected, line), line


def test_a_quiet_step_is_said_to_be_still_running(tmp_path):
    """RunProgress on a real instance: a step silent for longer than `quiet_seconds` gets a line."""
    from price_alchemy_assets.run_progress import PROGRESS_PREFIX, RunProgress

    @dg.op
    def slow(context) -> None:
        context.log.info(PROGRESS_PREFIX + "about to think")
        time.sleep(2.5)

    @dg.job
    def thinking():
        slow()

    said: list[str] = []
    run_id = "7a1e1b0e-0000-4000-8000-000000000001"
    with (
        dg.instance_for_test(temp_dir=str(tmp_path)) as instance,
        RunProgress(instance, run_id, said.append, poll_seconds=0.1, quiet_seconds=1.0, terminal=False),
    ):
        assert thinking.execute_in_process(instance=instance, run_id=run_id).success
    assert said[:2] == ["  slow started", "    about to think"]
    assert any(re.fullmatch(r"  \.\.\. slow still running \(\d\.\d s\)", line) for line in said[2:-1]), said
    assert re.fullmatch(r"  slow done in 2\.\d s", said[-1]), said


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("ops: [unclosed", ":1: not a YAML or JSON run config"),
        ("- just a list", "a run config is a mapping"),
        ('{"ops": {"tuned_model": {"config": {"budget": {"max_evals": "many"}}}}}', "run config: "),
        ('{"ops": {"tuned_model": {"config": {"no_such_knob": 1}}}}', "no_such_knob"),
    ],
)
def test_a_bad_run_config_is_one_line_and_runs_nothing(price_alchemy_home, tmp_path, content, expected):
    config = tmp_path / "run.yaml"
    config.write_text(content)
    result = run_cli("train", "--config", str(config))
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1 and len(lines) == 1, result.stderr
    assert lines[0].startswith("price-alchemy: error: ") and expected in lines[0]
    with dg.DagsterInstance.get() as instance:
        assert not instance.get_runs()


def _zip_without_tsv(path):
    with zipfile.ZipFile(path, "w") as handle:
        handle.writestr("notes.txt", "no listings")


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        (
            "wrong-columns.tsv",
            HEADER.replace("brand_name", "maker") + ROW.format(id=9),
            ":1: missing column(s): brand_name; unexpected column(s): maker",
        ),
        *(
            (
                f"{label}.tsv",
                HEADER + ROW.format(id=9) + ROW.format(id=10).replace("40.0", price),
                f":3: column price: {price!r} {problem}",
            )
            for label, price, problem in (
                ("bad-type", "forty", "is not a number"),
                ("nan-price", "NaN", "is not a number"),
                ("infinite-price", "inf", "is not a finite number"),
                ("minus-infinity-price", "-Infinity", "is not a finite number"),
            )
        ),
        (
            "broken-quoting.tsv",
            HEADER + ROW.format(id=9) + ROW.format(id=10).replace("Nike Air", '"Nike Air'),
            ":3: column name: broken quoting",
        ),
        ("empty.tsv", "", ": empty file"),
        (
            "latin1.tsv",
            (HEADER + ROW.format(id=9)).encode() + "11\tCafé\t3\t\t\t5.0\t1\tx\n".encode("latin-1"),
            ":3: not valid UTF-8",
        ),
        ("no-tsv.zip", _zip_without_tsv, ": no .tsv file inside"),
        ("truncated.tsv.gz", gzip.compress((HEADER + ROW.format(id=9) * 50).encode())[:-30], "cannot be decompressed"),
    ],
    ids=lambda value: value if isinstance(value, str) and value.endswith(("tsv", "zip", "gz")) else None,
)
def test_bad_input_is_one_line_non_zero_and_changes_nothing(price_alchemy_home, tmp_path, name, content, expected):
    good = tmp_path / "good.tsv"
    good.write_text(HEADER + "".join(ROW.format(id=i) for i in range(5)))
    assert run_cli("ingest", str(good)).returncode == 0
    bad = tmp_path / name
    if callable(content):
        content(bad)
    else:
        bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = run_cli("ingest", str(bad))
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"price-alchemy: error: {bad}")
    assert expected in lines[0]
    assert "nothing from this file was stored" in lines[0]
    assert stored_rows(price_alchemy_home) == 5


def test_ingest_genuine_rows_into_bigquery(price_alchemy_home, bigquery_env, genuine_train):
    result = run_cli("ingest", str(genuine_train), env=bigquery_env)
    assert result.returncode == 0, result.stderr
    assert "7,000 rows read, 7,000 new" in result.stdout
    assert f"BigQuery dataset price-alchemy-test.{bigquery_env['PRICE_ALCHEMY_BQ_DATASET']}" in result.stdout


def test_bigquery_without_dataset_names_the_variable(price_alchemy_home, monkeypatch):
    monkeypatch.setenv("PRICE_ALCHEMY_WAREHOUSE", "bigquery")
    monkeypatch.setenv("PRICE_ALCHEMY_BQ_PROJECT", "p")
    monkeypatch.delenv("PRICE_ALCHEMY_BQ_DATASET", raising=False)
    result = run_cli("status")
    assert result.returncode == 1
    assert "PRICE_ALCHEMY_BQ_DATASET" in result.stderr


def test_a_busy_warehouse_is_waited_for_then_named(price_alchemy_home, tmp_path):
    """DuckDB lets one process at a time open the file: ingest waits for a sensor tick or a run
    to let go, and past its wait says which file is busy, with nothing stored."""
    listings = tmp_path / "listings.tsv"
    assert run_cli("synth", "--rows", "500", "--seed", "3", "--output", str(listings)).returncode == 0
    warehouse = price_alchemy_home / "data" / "warehouse.duckdb"
    assert run_cli("status").returncode == 0  # creates the file

    def hold(seconds: float) -> subprocess.Popen:
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import duckdb, time; c = duckdb.connect({str(warehouse)!r}); "
                f"print('held', flush=True); time.sleep({seconds})",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout.readline().strip() == "held"
        return holder

    holder = hold(30)
    try:
        busy = run_cli("ingest", str(listings), env={"PRICE_ALCHEMY_DUCKDB_LOCK_WAIT_SECONDS": "1"})
    finally:
        holder.kill()
        holder.wait()
    assert busy.returncode == 1 and "is in use by another process" in busy.stderr and str(warehouse) in busy.stderr
    assert "Traceback" not in busy.stderr

    holder = hold(2)
    waited = run_cli("ingest", str(listings))
    holder.wait()
    assert waited.returncode == 0, waited.stderr
    assert "500 new" in waited.stdout
