"""How long one drift-sensor tick takes when the warehouse holds Mercari's full size.

The worst case for a tick: a champion trained on a small market (--train-rows), then --rows more
listings ingested after its watermark, so every GROUP BY runs over all of them, the labelled
sample (2,000 rows, ordered by fingerprint) is drawn from all of them and scored. Live traffic:
--traffic-rows listings in the prediction log, priced by the champion. Ticks run the real
`listings_and_traffic_drift_sensor`, --ticks times; the daemon's default sensor timeout is 60 s.

    .venv/bin/python benchmarks/drift_tick.py [--rows 1500000] [--output docs/benchmarks/drift-tick.md]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from price_alchemy_assets.definitions import MAIN_JOB, defs
from price_alchemy_assets.defs.drift import listings_and_traffic_drift_sensor
from price_alchemy_assets.defs.resources import DriftMonitorResource, resources_under
from price_alchemy_assets.listings.columns import SELLER_FIELDS
from price_alchemy_assets.listings.synthetic import write_synthetic_listings
from price_alchemy_assets.service.prediction_log import LoggedRequest, PredictionLog
from price_alchemy_assets.warehouse.ingest import ingest_listings_file

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_500_000, help="listings ingested after the champion")
    parser.add_argument("--train-rows", type=int, default=20_000)
    parser.add_argument("--traffic-rows", type=int, default=100_000)
    parser.add_argument("--ticks", type=int, default=5)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    now = datetime.now(UTC)
    steps = []

    def timed(name: str, action):
        started = time.perf_counter()
        value = action()
        steps.append({"step": name, "seconds": time.perf_counter() - started})
        print(f"{name}: {steps[-1]['seconds']:.1f} s", flush=True)
        return value

    with tempfile.TemporaryDirectory(prefix="price-alchemy-tick-bench-") as folder, dg.instance_for_test() as instance:
        root = Path(folder)
        resources = resources_under(root) | {"drift_monitor": DriftMonitorResource(cooldown_minutes=0)}
        warehouse = resources["warehouse"].open()
        market = write_synthetic_listings(root / "market.tsv", args.train_rows, seed=1, start=now - timedelta(days=40))
        ingest_listings_file(market, warehouse)
        run_config = {
            "ops": {"tuned_model": {"config": {"budget": {"max_evals": 2}}}},
            "execution": {"config": {"in_process": {}}},
        }
        job = defs.resolve_job_def(MAIN_JOB)
        assert timed(
            "train the champion",
            lambda: job.execute_in_process(run_config=run_config, instance=instance, resources=resources).success,
        )
        champion = resources["model_store"].store().champion()
        arrived = root / "arrived.tsv"
        timed(
            f"synth {args.rows:,} new listings",
            lambda: write_synthetic_listings(arrived, args.rows, seed=2, start=now - timedelta(days=30)),
        )
        timed(f"ingest {args.rows:,} new listings", lambda: ingest_listings_file(arrived, warehouse))

        traffic = pd.read_csv(arrived, sep="\t", nrows=args.traffic_rows, keep_default_na=False)[list(SELLER_FIELDS)]
        records = traffic.astype(object).where(traffic != "", None).to_dict("records")
        log = PredictionLog(resources["prediction_log"].url)
        log.start()
        for offset in range(0, len(records), 1_000):
            part = records[offset : offset + 1_000]
            log.append(
                LoggedRequest(
                    now, "bench", "predict_batch", champion.version, 5.0, part, [(10.0, 5.0, 20.0)] * len(part)
                )
            )
        timed(f"log {len(records):,} predictions", log.close)

        ticks = []
        for number in range(args.ticks):
            with dg.build_sensor_context(instance=instance, resources=resources) as context:
                started = time.perf_counter()
                result = listings_and_traffic_drift_sensor(context)
                ticks.append(time.perf_counter() - started)
            print(f"tick {number + 1}: {ticks[-1]:.2f} s, run requested: {bool(result.run_requests)}", flush=True)
        reports = {e.metadata["source"].value: e.metadata for e in result.asset_events}

    table = pd.DataFrame(steps)
    new_rows, traffic_rows = (reports[source]["new_listings"].value for source in ("new listings", "live traffic"))
    report = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with benchmarks/drift_tick.py on 2 cores, DuckDB "
        f"warehouse: a champion trained on {args.train_rows:,} listings, then {args.rows:,} listings ingested after "
        f"its watermark (every one of them is new to the sensor) and {len(records):,} predictions in the SQLite "
        "prediction log.\n\n"
        + table.to_markdown(index=False, floatfmt=".1f")
        + f"\n\nOne tick of listings_and_traffic_drift_sensor (GROUP BY profiles of {new_rows:,} "
        f"new listings and {traffic_rows:,} logged predictions, a 2,000-row labelled "
        f"sample scored by the champion, out-of-vocabulary rates): first {ticks[0]:.2f} s (loads the champion), "
        f"then median {sorted(ticks[1:])[len(ticks[1:]) // 2]:.2f} s over {len(ticks) - 1} ticks. The daemon's "
        "default sensor timeout is 60 s.\n"
    )
    print(report)
    if args.output:
        args.output.write_text(report)


if __name__ == "__main__":
    main()
