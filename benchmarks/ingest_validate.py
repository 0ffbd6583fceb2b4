"""Ingest and validation throughput and peak memory, on DuckDB and on the BigQuery emulator.

Each phase runs in its own process so its peak RSS is its own (os.wait4). The baseline,
measured in the same run on the same file, is pandas.read_csv of the whole file: what a
naive loader costs in time and memory. Prints a Markdown table; --output writes it too.

    .venv/bin/python benchmarks/ingest_validate.py                      # 150k and 1.5M on DuckDB, 100k on the emulator
    .venv/bin/python benchmarks/ingest_validate.py --duckdb-rows 20000 --emulator-rows 5000   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def worker(phase: str, path: Path) -> dict:
    """One measured phase, run in a child process; the clock starts after the imports."""
    import pandas as pd

    from price_alchemy_assets.defs.resources import open_warehouse
    from price_alchemy_assets.listings.synthetic import write_synthetic_listings
    from price_alchemy_assets.listings.validation import validate_listings
    from price_alchemy_assets.settings import load_settings
    from price_alchemy_assets.warehouse.ingest import ingest_listings_file

    started = time.perf_counter()
    if phase == "synth":
        rows = int(os.environ["BENCH_ROWS"])
        write_synthetic_listings(path, rows, seed=11, start=datetime(2026, 10, 1, tzinfo=UTC))
    elif phase == "baseline: pandas.read_csv":
        rows = len(pd.read_csv(path, sep="\t"))
    elif phase == "ingest":
        with open_warehouse(load_settings()) as warehouse:
            rows = ingest_listings_file(path, warehouse).rows_added
    elif phase == "read + validate":
        with open_warehouse(load_settings()) as warehouse:
            rows = validate_listings(warehouse.read_listings()).rows_in
    else:
        raise ValueError(phase)
    return {"rows": rows, "seconds": time.perf_counter() - started}


def measure(phase: str, path: Path, env: dict[str, str]) -> dict:
    child = subprocess.Popen(
        [sys.executable, __file__, "--worker", phase, "--path", str(path)],
        stdout=subprocess.PIPE,
        env={**os.environ, **env},
        text=True,
    )
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    if status != 0:
        raise RuntimeError(f"{phase} failed with status {status}")
    result = json.loads(out.strip().splitlines()[-1])
    return {**result, "peak_rss_mb": usage.ru_maxrss / 1024}


def run_backend(label: str, rows: int, workdir: Path, env: dict[str, str], table: list) -> None:
    path = workdir / f"listings-{rows}.tsv"
    db = workdir / f"warehouse-{label}-{rows}.duckdb"
    env = {"BENCH_ROWS": str(rows), "PRICE_ALCHEMY_DUCKDB_PATH": str(db), **env}
    phases = ["synth", "baseline: pandas.read_csv", "ingest", "read + validate"]
    if path.exists():
        phases.remove("synth")
    for phase in phases:
        print(f"  {label} {rows:,}: {phase} ...", file=sys.stderr, flush=True)
        result = measure(phase, path, env)
        table.append({"backend": label, "phase": phase, **result})


def render(table: list, note: str) -> str:
    lines = [
        "| backend | phase | rows | seconds | rows/s | peak RSS (MB) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in table:
        lines.append(
            f"| {row['backend']} | {row['phase']} | {row['rows']:,} | {row['seconds']:.1f} | "
            f"{row['rows'] / row['seconds']:,.0f} | {row['peak_rss_mb']:,.0f} |"
        )
    return note + "\n\n" + "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--worker")
    parser.add_argument("--path", type=Path)
    parser.add_argument("--duckdb-rows", type=int, nargs="+", default=[150_000, 1_500_000])
    parser.add_argument("--emulator-rows", type=int, default=100_000, help="0 skips the emulator")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.path)))
        return

    table: list = []
    with tempfile.TemporaryDirectory(prefix="price-alchemy-bench-") as tmp:
        workdir = Path(tmp)
        for rows in args.duckdb_rows:
            run_backend("duckdb", rows, workdir, {"PRICE_ALCHEMY_WAREHOUSE": "duckdb"}, table)
        if args.emulator_rows:
            from price_alchemy_assets.devtools.bigquery_emulator import emulator_env, running_emulator

            with running_emulator(workdir / "emulator.log") as endpoint:
                env = emulator_env(endpoint, f"bench_{uuid.uuid4().hex[:8]}")
                run_backend("bigquery emulator", args.emulator_rows, workdir, env, table)
    note = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {platform.node()} "
        f"({os.cpu_count()} cores), Python {platform.python_version()}; ingest chunk = 50,000 rows. "
        "Seconds exclude interpreter start and imports; peak RSS includes them (~250 MB for dagster, "
        "pandas and the BigQuery client)."
    )
    report = render(table, note)
    print(report)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(report)


if __name__ == "__main__":
    main()
