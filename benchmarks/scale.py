"""The whole job at scale: synthesize N listings, ingest them, materialize raw_listings -> champion
with the default tuning budget, and report wall time and peak RSS per asset.

Runs in one process with the in-process executor; a sampler thread reads this process's RSS
every 0.2 s and each step gets the peak seen between its start and end events.

    .venv/bin/python benchmarks/scale.py --rows 1500000 --output docs/benchmarks/scale.md

`--keep-champion DIR` copies the champion into a model store at DIR, for the service measured at
this scale (benchmarks/service_at_scale.py).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import tempfile
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from price_alchemy_assets.definitions import MAIN_JOB, defs
from price_alchemy_assets.defs.resources import resources_under
from price_alchemy_assets.listings.synthetic import write_synthetic_listings
from price_alchemy_assets.model.store import FolderModelStore, ModelStore
from price_alchemy_assets.settings import Settings
from price_alchemy_assets.warehouse.ingest import ingest_listings_file

REPO = Path(__file__).resolve().parents[1]


class RssSampler(threading.Thread):
    def __init__(self, interval: float = 0.2):
        super().__init__(daemon=True)
        self.interval, self.samples, self.running = interval, [], True

    def run(self) -> None:
        while self.running:
            with open("/proc/self/status") as status:
                rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
            self.samples.append((time.time(), rss_kb / 1024))
            time.sleep(self.interval)

    def peak_between(self, start: float, end: float) -> float:
        inside = [mb for stamp, mb in self.samples if start <= stamp <= end]
        return max(inside) if inside else float("nan")


def keep_champion(store: ModelStore, kept: FolderModelStore) -> None:
    """The champion's bundle and pointer, copied into `kept` (the job's store is temporary)."""
    record = store.champion()
    shutil.copytree(record.model_path, kept.version_location(record.version))
    kept.promote(replace(record, model_path=kept.version_location(record.version)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_500_000)
    parser.add_argument("--output", type=Path)
    parser.add_argument("--keep-champion", type=Path, help="a folder: the champion's model store is copied there")
    args = parser.parse_args()
    sampler = RssSampler()
    sampler.start()
    rows = []
    with tempfile.TemporaryDirectory(prefix="price-alchemy-scale-") as folder:
        root = Path(folder)
        resources = resources_under(root)
        for name, action in (
            (
                "synth",
                lambda: write_synthetic_listings(
                    root / "listings.tsv", args.rows, seed=5, start=datetime.now(UTC) - timedelta(days=30)
                ),
            ),
            ("ingest", lambda: ingest_listings_file(root / "listings.tsv", resources["warehouse"].open())),
        ):
            started = time.time()
            action()
            rows.append(
                {
                    "step": name,
                    "seconds": time.time() - started,
                    "peak_rss_mb": sampler.peak_between(started, time.time()),
                }
            )
        started = time.time()
        with dg.instance_for_test() as instance:
            result = defs.resolve_job_def(MAIN_JOB).execute_in_process(
                instance=instance, resources=resources, raise_on_error=False
            )
            events = instance.all_logs(result.run_id)
        if args.keep_champion and result.success:
            keep_champion(Settings.defaults(root).open_model_store(), FolderModelStore(args.keep_champion))
        job_seconds = time.time() - started
        starts = {
            e.step_key: e.timestamp
            for e in events
            if e.dagster_event and e.dagster_event.event_type_value == "STEP_START"
        }
        for event in events:
            if event.dagster_event and event.dagster_event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
                begun = starts[event.step_key]
                rows.append(
                    {
                        "step": f"{event.step_key}"
                        + (" (FAILED)" if event.dagster_event.event_type_value == "STEP_FAILURE" else ""),
                        "seconds": event.timestamp - begun,
                        "peak_rss_mb": sampler.peak_between(begun, event.timestamp),
                    }
                )
    sampler.running = False
    model_metadata = {
        key: getattr(value, "value", value)
        for event in events
        if event.dagster_event
        and event.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
        and event.dagster_event.asset_key == dg.AssetKey("tuned_model")
        for key, value in event.dagster_event.materialization.metadata.items()
        if key in ("seconds", "blend_weights", "trials", "held_out_rows") or key.startswith("validation_rmsle")
    }
    table = pd.DataFrame(rows)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with benchmarks/scale.py: {args.rows:,} synthetic "
        f"listings, default tuning budget, in-process executor, 2 cores. Job "
        f"{'succeeded' if result.success else 'FAILED'}: raw_listings -> champion in {job_seconds / 60:.1f} min; "
        f"synth + ingest + job {table['seconds'].sum() / 60:.1f} min; peak RSS of the process {peak / 1024:.2f} "
        "GiB.\n\n" + table.to_markdown(index=False, floatfmt=".1f") + "\n\n"
        "tuned_model: " + ", ".join(f"{key} {value}" for key, value in model_metadata.items()) + ".\n"
    )
    print(report)
    if args.output:
        args.output.write_text(report)


if __name__ == "__main__":
    main()
