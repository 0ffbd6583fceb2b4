"""Jobs: the main job materializes everything from the warehouse to the latest evaluated model."""

import dagster as dg

MAIN_JOB = "price_alchemy_main"

main_job = dg.define_asset_job(
    MAIN_JOB,
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("drift_report"),
    description="Everything from the warehouse to the latest evaluated model.",
)
