"""The Price Alchemy code location: every asset, check, job and resource, in one place."""

import dagster as dg

from price_alchemy_assets.assets.listings import raw_listings, validated_and_rejected_listings
from price_alchemy_assets.assets.model import champion, eval_report, tfidf_features, tuned_model
from price_alchemy_assets.checks.listings import validated_listings_checks
from price_alchemy_assets.checks.model import eval_report_checks
from price_alchemy_assets.jobs import MAIN_JOB, main_job
from price_alchemy_assets.resources import (
    alerting_from_env,
    drift_monitor_from_env,
    listings_io_manager,
    model_resources_from_env,
    prediction_log_from_env,
    warehouse_from_env,
)
from price_alchemy_assets.sensors.alerts import failure_alert_sensor
from price_alchemy_assets.sensors.drift import drift_report, listings_drift_sensor

__all__ = ["MAIN_JOB", "defs"]

defs = dg.Definitions(
    assets=[
        raw_listings,
        validated_and_rejected_listings,
        tfidf_features,
        tuned_model,
        eval_report,
        champion,
        drift_report,
    ],
    asset_checks=[validated_listings_checks, eval_report_checks],
    jobs=[main_job],
    sensors=[listings_drift_sensor, failure_alert_sensor],
    resources={
        "warehouse": warehouse_from_env(),
        "io_manager": listings_io_manager(),
        "drift_monitor": drift_monitor_from_env(),
        "prediction_log": prediction_log_from_env(),
        "alerting": alerting_from_env(),
        **model_resources_from_env(),
    },
)
