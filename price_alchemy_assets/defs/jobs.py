"""Jobs: the main job materializes everything from the warehouse to the latest evaluated model.

Where it runs is chosen by environment: by default the steps run as processes beside the run
(or in the run's process when a run asks for it); with PRICE_ALCHEMY_EXECUTOR=k8s each step is a
Kubernetes pod of its own, sized from the 1.5 M-listing scale benchmark (docs/benchmarks/scale.md).
"""

import warnings

import dagster as dg
from dagster_k8s import k8s_job_executor

with warnings.catch_warnings():  # beta in dagster-mlflow 0.29; nothing a user can act on
    warnings.simplefilter("ignore", dg.BetaWarning)
    from dagster_mlflow import end_mlflow_on_run_finished

from price_alchemy_assets.settings import settings_at_start

MAIN_JOB = "price_alchemy_main"
TRAINING_TAG = "price_alchemy/training"
"""Every run of the main job carries it; the instance's run queue lets one such run go at a time."""


def _pod(cpu: str, memory: str, memory_limit: str) -> dict:
    return {
        "container_config": {
            "resources": {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory_limit}}
        }
    }


STEP_PODS = {
    # peak RSS at 1.5 M listings when each step ran after the previous ones in one process was
    # 2.0 / 3.3 / 5.8 / 7.8 GiB; a pod of its own needs less, so these requests leave room to spare
    "raw_listings": _pod("1", "3Gi", "4Gi"),
    "validated_and_rejected_listings": _pod("1", "4Gi", "5Gi"),
    "validated_listings_checks": _pod("500m", "3Gi", "4Gi"),
    "tfidf_features": _pod("2", "6Gi", "8Gi"),
    "tuned_model": _pod("2", "8Gi", "10Gi"),  # LightGBM uses every core it is given
    "eval_report": _pod("1", "5Gi", "6Gi"),
    "eval_report_checks": _pod("250m", "1Gi", "2Gi"),
    "champion": _pod("250m", "1Gi", "2Gi"),
}


def executor(chosen: str) -> dg.ExecutorDefinition | None:
    """k8s_job_executor with STEP_PODS for `k8s` (PRICE_ALCHEMY_EXECUTOR); else Dagster's default."""
    if chosen == "k8s":
        return k8s_job_executor.configured({"per_step_k8s_config": STEP_PODS, "max_concurrent": 2})
    return None


main_job = dg.define_asset_job(
    MAIN_JOB,
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("drift_report", "online_evaluation"),
    description="Everything from the warehouse to the latest evaluated model.",
    tags={TRAINING_TAG: "main"},
    executor_def=executor(settings_at_start().runs.executor),
    # after the last step (or a failed one), any MLflow run still open in the step's process ends
    hooks={end_mlflow_on_run_finished},
)


observe_listings_job = dg.define_asset_job(
    "observe_listings_table",
    selection=dg.AssetSelection.assets("listings_table"),
    description="Record the warehouse table's row count and newest ingest as its data version.",
)
observe_listings_schedule = dg.ScheduleDefinition(
    name="hourly_listings_observation",
    job=observe_listings_job,
    cron_schedule="0 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Hourly, for rows that arrive other than by `price-alchemy ingest` (which observes itself).",
)
weekly_retraining_schedule = dg.ScheduleDefinition(
    name="weekly_retraining",
    job=main_job,
    cron_schedule="0 3 * * 1",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="A safety net for when drift never fires: retrain every Monday 03:00 (stopped until a user "
    "starts it). The gate still keeps a champion that the new model does not beat.",
)
