"""Jobs: the main job materializes everything from the warehouse to the latest evaluated model."""

import dagster as dg

MAIN_JOB = "price_alchemy_main"
TRAINING_TAG = "price_alchemy/training"
"""Every run of the main job carries it; the instance's run queue lets one such run go at a time."""

main_job = dg.define_asset_job(
    MAIN_JOB,
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("drift_report"),
    description="Everything from the warehouse to the latest evaluated model.",
    tags={TRAINING_TAG: "main"},
)
