"""The Price Alchemy code location: every asset, check, job and resource, in one place."""

import dagster as dg

from price_alchemy_assets.assets.listings import raw_listings, validated_and_rejected_listings
from price_alchemy_assets.assets.model import champion, eval_report, tfidf_features, tuned_model
from price_alchemy_assets.checks.listings import validated_listings_checks
from price_alchemy_assets.checks.model import eval_report_checks
from price_alchemy_assets.resources import listings_io_manager, model_resources_from_env, warehouse_from_env

MAIN_JOB = "price_alchemy_main"

main_job = dg.define_asset_job(
    MAIN_JOB,
    selection=dg.AssetSelection.all(),
    description="Everything from the warehouse to the latest evaluated model.",
)

defs = dg.Definitions(
    assets=[raw_listings, validated_and_rejected_listings, tfidf_features, tuned_model, eval_report, champion],
    asset_checks=[validated_listings_checks, eval_report_checks],
    jobs=[main_job],
    resources={"warehouse": warehouse_from_env(), "io_manager": listings_io_manager(), **model_resources_from_env()},
)
