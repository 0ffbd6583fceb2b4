"""The Price Alchemy code location: every asset, check, job and resource, in one place."""

import dagster as dg

from price_alchemy_assets.assets.listings import listings_table, raw_listings, validated_and_rejected_listings
from price_alchemy_assets.assets.model import champion, eval_report, tfidf_features, tuned_model
from price_alchemy_assets.checks.listings import validated_listings_checks
from price_alchemy_assets.checks.model import eval_report_checks
from price_alchemy_assets.jobs import (
    MAIN_JOB,
    main_job,
    observe_listings_job,
    observe_listings_schedule,
    weekly_retraining_schedule,
)
from price_alchemy_assets.resources import resources_from_env
from price_alchemy_assets.sensors.alerts import failure_alert_sensor
from price_alchemy_assets.sensors.drift import drift_report, listings_drift_sensor

__all__ = ["MAIN_JOB", "defs"]

defs = dg.Definitions(
    assets=[
        listings_table,
        raw_listings,
        validated_and_rejected_listings,
        tfidf_features,
        tuned_model,
        eval_report,
        champion,
        drift_report,
    ],
    asset_checks=[validated_listings_checks, eval_report_checks],
    jobs=[main_job, observe_listings_job],
    schedules=[observe_listings_schedule, weekly_retraining_schedule],
    sensors=[listings_drift_sensor, failure_alert_sensor],
    resources=resources_from_env(),
)
