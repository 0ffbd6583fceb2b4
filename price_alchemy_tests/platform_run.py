"""Test support for the whole platform: a warehouse with synthetic listings and every model
resource under one folder, and the main job's assets materialized with a tiny tuning budget."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import dagster as dg

from price_alchemy_assets.definitions import defs
from price_alchemy_assets.defs.online_evaluation import ONLINE_EVALUATION
from price_alchemy_assets.defs.resources import resources_under
from price_alchemy_assets.listings.synthetic import write_synthetic_listings
from price_alchemy_assets.warehouse.ingest import ingest_listings_file

TINY = {
    "budget": {"max_evals": 2, "timeout_seconds": 600, "max_boost_rounds": 80, "early_stopping_rounds": 10},
    "blend": {"folds": 2, "mlp": {"networks": 1, "epochs": 2}},
}
RUN_CONFIG = {"ops": {"tuned_model": {"config": TINY}}}
ALL = [
    *(
        asset
        for asset in defs.assets
        if isinstance(asset, dg.AssetsDefinition) and dg.AssetKey(ONLINE_EVALUATION) not in asset.keys
    ),
    *defs.asset_checks,
]
"""What the main job materializes (drift_report is recorded by the sensor, not materialized;
online_evaluation has its own job)."""


def platform_under(tmp_path) -> tuple[dict, object]:
    """Resources under tmp_path, with 3,000 synthetic listings from the last five days ingested."""
    resources = resources_under(tmp_path)
    start = datetime.now(UTC) - timedelta(days=5)
    listings = write_synthetic_listings(tmp_path / "listings.tsv", 3_000, seed=4, start=start, days=5)
    ingest_listings_file(listings, resources["warehouse"].open())
    return resources, tmp_path


def run_all(resources, instance) -> dg.ExecuteInProcessResult:
    return dg.materialize(ALL, resources=resources, instance=instance, run_config=RUN_CONFIG, raise_on_error=False)
