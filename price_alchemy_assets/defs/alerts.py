"""The alert sensor: one alert per failed asset check and per failed run, on every channel.

It reads the runs that ended after the storage ids kept in its cursor, and each one's check
evaluations, so each failure is alerted once, and a daemon restart neither repeats nor skips
one. Switched on for the first time, it starts from the newest runs: history is not replayed.
"""

import json

import dagster as dg

from price_alchemy_assets.defs.resources import AlertingResource
from price_alchemy_assets.monitoring.alerts import Alert, deliver

RUNS_PER_TICK = 50
NUMBERS_PER_ALERT = 12


def _numbers(metadata) -> dict[str, float | int]:
    numeric = {
        name: value.value
        for name, value in metadata.items()
        if isinstance(value, dg.FloatMetadataValue | dg.IntMetadataValue) and value.value is not None
    }
    return dict(list(numeric.items())[:NUMBERS_PER_ALERT])


def _check_alert(record, alerting: AlertingResource) -> Alert | None:
    evaluation = record.event_log_entry.dagster_event.event_specific_data
    if evaluation.passed:
        return None
    asset = evaluation.asset_key.to_user_string()
    texts = {k: v.value for k, v in evaluation.metadata.items() if isinstance(v, dg.TextMetadataValue)}
    numbers = _numbers(evaluation.metadata)
    measured = "; ".join([f"{k}: {v}" for k, v in texts.items()] + [f"{k} = {v:g}" for k, v in numbers.items()])
    summary = evaluation.description or f"{evaluation.check_name} did not pass" + (f": {measured}" if measured else "")
    return Alert(
        title=f"Asset check {asset}/{evaluation.check_name} failed",
        severity=evaluation.severity.value,
        summary=summary,
        run_id=record.run_id,
        run_url=alerting.run_url(record.run_id),
        asset=asset,
        check=evaluation.check_name,
        numbers=numbers,
    )


def _run_alert(record, alerting: AlertingResource) -> Alert:
    event = record.event_log_entry.dagster_event
    return Alert(
        title=f"Run of {event.job_name} failed",
        severity="ERROR",
        summary=event.message or record.event_log_entry.user_message,
        run_id=record.run_id,
        run_url=alerting.run_url(record.run_id),
        job=event.job_name,
    )


ENDED = {"succeeded": dg.DagsterEventType.RUN_SUCCESS, "failed": dg.DagsterEventType.RUN_FAILURE}
"""Runs are read as they end (their status changes sit in every event storage's index, run-sharded
SQLite included); a run's failed checks are read from that run's own events."""


def _latest_storage_id(instance: dg.DagsterInstance, kind: dg.DagsterEventType) -> int:
    latest = instance.fetch_run_status_changes(kind, limit=1).records
    return latest[0].storage_id if latest else 0


def _alerts_for(instance: dg.DagsterInstance, ended, alerting: AlertingResource) -> list[Alert]:
    evaluations = instance.get_records_for_run(ended.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)
    alerts = [alert for record in evaluations.records if (alert := _check_alert(record, alerting))]
    if ended.event_log_entry.dagster_event.event_type == dg.DagsterEventType.RUN_FAILURE:
        alerts.append(_run_alert(ended, alerting))
    return alerts


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Sends one alert per failed asset check and failed run (log, webhook, e-mail).",
)
def failure_alert_sensor(context: dg.SensorEvaluationContext, alerting: AlertingResource) -> dg.SensorResult:
    instance = context.instance
    if not context.cursor:
        cursor = {name: _latest_storage_id(instance, kind) for name, kind in ENDED.items()}
        return dg.SensorResult(skip_reason="watching for failures from now on", cursor=json.dumps(cursor))
    cursor = json.loads(context.cursor)
    channels = alerting.channels()
    sent = []
    for name, kind in ENDED.items():
        ended_runs = instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(kind, after_storage_id=cursor[name]), limit=RUNS_PER_TICK, ascending=True
        ).records
        for ended in ended_runs:
            cursor[name] = ended.storage_id
            for alert in _alerts_for(instance, ended, alerting):
                deliveries = deliver(alert, channels, attempts=alerting.attempts)
                for delivery in deliveries:
                    if not delivery.delivered:
                        context.log.error(
                            "alert %r not delivered to %s after %d attempts: %s",
                            alert.title,
                            delivery.channel,
                            delivery.attempts,
                            delivery.error,
                        )
                delivered = ", ".join(d.channel for d in deliveries if d.delivered) or "nowhere"
                sent.append(f"{alert.title} -> {delivered}")
    for line in sent:
        context.log.info("alert: %s", line)
    reason = f"{len(sent)} alerts sent" if sent else "no new failures"
    return dg.SensorResult(skip_reason=reason, cursor=json.dumps(cursor))
