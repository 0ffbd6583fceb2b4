"""How well the drift sensor tells shifted batches from ordinary ones, one tick per batch.

A champion is trained by the main job on a synthetic market (--rows listings over 30 days).
Then each batch (--batch-rows listings created in the last day) is ingested into its own copy of
that warehouse and the real `listings_and_traffic_drift_sensor` ticks once on it (GROUP BY profiles, the
out-of-vocabulary rate, the champion's RMSLE on up to 2,000 newly labelled rows):
- 20 in-distribution batches (new seeds of the same market);
- 20 drifted batches: 5 kinds x strengths 0.25, 0.5, 1 and 2.
Each batch is judged twice: with its prices (the sensor as configured) and without them (the
distribution measures alone, as for unlabelled live traffic). The RMSLE rise is the champion's
RMSLE on the batch minus its evaluation RMSLE, the quantity the sensor compares.

Target: 0 false triggers, and >= 95 % of the shifts that raise the champion's RMSLE by >= 0.05
detected within one tick.

    .venv/bin/python benchmarks/drift_detection.py [--output docs/benchmarks/drift-detection.md]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd

from price_alchemy_assets.definitions import MAIN_JOB, defs
from price_alchemy_assets.defs.drift import listings_and_traffic_drift_sensor
from price_alchemy_assets.defs.resources import DriftMonitorResource, DuckDBWarehouseResource, resources_under
from price_alchemy_assets.listings.synthetic import DriftKind, write_synthetic_listings
from price_alchemy_assets.monitoring.drift_watch import NEW_LISTINGS
from price_alchemy_assets.warehouse.ingest import ingest_listings_file

REPO = Path(__file__).resolve().parents[1]


STRENGTHS = (0.25, 0.5, 1.0, 2.0)
RISE = 0.05
NEVER = 1e9


def tick(instance, resources: dict, monitor: DriftMonitorResource) -> tuple[bool, dict, float]:
    """One evaluation of the real sensor: whether it requested a run, the new-listings report, seconds."""
    started = time.perf_counter()
    with dg.build_sensor_context(instance=instance, resources=resources | {"drift_monitor": monitor}) as context:
        result = listings_and_traffic_drift_sensor(context)
    seconds = time.perf_counter() - started
    (event,) = [e for e in result.asset_events if e.metadata["source"].value == NEW_LISTINGS]
    return bool(result.run_requests), {k: v.value for k, v in event.metadata.items()}, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=30_000, help="listings the champion learns from")
    parser.add_argument("--batch-rows", type=int, default=2_000)
    parser.add_argument("--max-evals", type=int, default=4)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    monitor = DriftMonitorResource(cooldown_minutes=0)
    unlabelled = DriftMonitorResource(cooldown_minutes=0, rmsle_increase=NEVER)
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="price-alchemy-drift-bench-") as folder, dg.instance_for_test() as instance:
        root = Path(folder)
        resources = resources_under(root)
        market = write_synthetic_listings(root / "market.tsv", args.rows, seed=1, start=now - timedelta(days=31))
        ingest_listings_file(market, resources["warehouse"].open())
        run_config = {
            "ops": {"tuned_model": {"config": {"budget": {"max_evals": args.max_evals}}}},
            "execution": {"config": {"in_process": {}}},
        }
        started = time.perf_counter()
        trained = defs.resolve_job_def(MAIN_JOB).execute_in_process(
            run_config=run_config, instance=instance, resources=resources, raise_on_error=True
        )
        assert trained.success
        champion = resources["model_store"].store().champion()
        print(
            f"champion {champion.version}: RMSLE {champion.metrics['rmsle']:.4f} "
            f"({time.perf_counter() - started:.0f} s)"
        )

        batches = [("in-distribution", 0.0, 100 + i, None) for i in range(20)]
        batches += [
            (kind.value, s, 200 + 10 * n + i, kind) for n, kind in enumerate(DriftKind) for i, s in enumerate(STRENGTHS)
        ]
        rows = []
        for name, strength, seed, kind in batches:
            copy = root / f"batch-{seed}"
            copy.mkdir()
            shutil.copy(root / "warehouse.duckdb", copy / "warehouse.duckdb")
            batch_resources = resources | {"warehouse": DuckDBWarehouseResource(path=str(copy / "warehouse.duckdb"))}
            path = write_synthetic_listings(
                copy / "batch.tsv", args.batch_rows, seed=seed, start=now - timedelta(days=1), days=1,
                drift=kind, strength=strength or 1.0,
            )  # fmt: skip
            ingest_listings_file(path, batch_resources["warehouse"].open())
            triggered, report, seconds = tick(instance, batch_resources, monitor)
            without_prices, _, _ = tick(instance, batch_resources, unlabelled)
            rise = report["labelled_rmsle"] - champion.metrics["rmsle"]
            rows.append(
                {
                    "batch": name,
                    "strength": strength if kind else None,
                    "seed": seed,
                    "RMSLE": report["labelled_rmsle"],
                    "RMSLE rise": rise,
                    "max PSI": report["max_psi"],
                    "unseen categories": report["unseen_category_share"],
                    "unseen brands": report["unseen_brand_share"],
                    "OOV": report["oov_rate"],
                    "triggered": triggered,
                    "triggered without prices": without_prices,
                    "tick s": seconds,
                }
            )
            print(
                f"{name:>16} {strength:4.2f} rise {rise:+.3f} "
                f"triggered {triggered} / {without_prices} ({seconds:.1f} s)"
            )
            shutil.rmtree(copy)

    table = pd.DataFrame(rows)
    calm, shifted = table[table["strength"].isna()], table[table["strength"].notna()]
    harmful = shifted[shifted["RMSLE rise"] >= RISE]
    by_kind = (
        shifted.groupby("batch")
        .agg(
            **{
                "mean RMSLE rise": ("RMSLE rise", "mean"),
                "max RMSLE rise": ("RMSLE rise", "max"),
                "detected": ("triggered", "sum"),
                "detected without prices": ("triggered without prices", "sum"),
                "batches": ("triggered", "size"),
            }
        )
        .reset_index()
    )
    summary = pd.DataFrame(
        [
            {
                "measure": "false triggers (20 in-distribution batches)",
                "with prices": int(calm["triggered"].sum()),
                "without prices": int(calm["triggered without prices"].sum()),
            },
            {
                "measure": "drifted batches detected (of 20)",
                "with prices": int(shifted["triggered"].sum()),
                "without prices": int(shifted["triggered without prices"].sum()),
            },
            {
                "measure": f"batches raising RMSLE by >= {RISE} detected (of {len(harmful)})",
                "with prices": int(harmful["triggered"].sum()),
                "without prices": int(harmful["triggered without prices"].sum()),
            },
        ]
    )
    met = calm["triggered"].sum() == 0 and (harmful["triggered"].mean() if len(harmful) else 1.0) >= 0.95
    report = (
        f"Measured {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with benchmarks/drift_detection.py on 2 cores: champion "
        f"trained by the main job on {args.rows:,} synthetic listings (evaluation RMSLE "
        f"{champion.metrics['rmsle']:.4f}); each batch of {args.batch_rows:,} listings is ingested into its own "
        "copy of the warehouse and the real listings_and_traffic_drift_sensor ticks once, with default thresholds "
        "(PSI 0.2, "
        "unseen share 10 %, out-of-vocabulary rise 0.05, RMSLE rise 0.05, at least 500 listings). "
        '"Without prices" is the same tick with the RMSLE test switched off: the distribution measures '
        "alone, as for unlabelled live traffic.\n\n"
        + summary.to_markdown(index=False)
        + "\n\nBy drift kind (strengths 0.25, 0.5, 1, 2):\n\n"
        + by_kind.to_markdown(index=False, floatfmt=".3f")
        + f"\n\nTarget: 0 false triggers, >= 95 % of shifts raising the champion's RMSLE by >= {RISE} detected "
        f"within one tick: **{'met' if met else 'NOT met'}**. Median tick {table['tick s'].median():.1f} s.\n\n"
        "Every batch:\n\n" + table.to_markdown(index=False, floatfmt=".3f") + "\n"
    )
    print(report)
    if args.output:
        args.output.write_text(report)


if __name__ == "__main__":
    main()
