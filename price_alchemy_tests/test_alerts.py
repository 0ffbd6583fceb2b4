"""Alerts for failed asset checks and failed runs, delivered to a real HTTP receiver and a real
SMTP server on 127.0.0.1: right content, one alert per failure, retries, and a dead channel
that never holds back the others."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest
from aiosmtpd.controller import Controller

from price_alchemy_assets.defs.alerts import failure_alert_sensor
from price_alchemy_assets.defs.listings import raw_listings, validated_and_rejected_listings, validated_listings_checks
from price_alchemy_assets.defs.resources import AlertingResource, resources_under
from price_alchemy_assets.devtools.local_servers import free_port
from price_alchemy_assets.listings.synthetic import write_synthetic_listings
from price_alchemy_assets.monitoring.alerts import Alert, SmtpChannel, WebhookChannel, deliver
from price_alchemy_assets.warehouse.ingest import ingest_listings_file


class WebhookReceiver:
    """A Slack-like incoming webhook: records JSON bodies; answers 503 to the first `failures`."""

    def __init__(self, failures: int = 0) -> None:
        self.bodies: list[dict] = []
        self.requests = 0
        self.failures = failures
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests += 1
                if receiver.requests <= receiver.failures:
                    self.send_response(503)
                else:
                    receiver.bodies.append(json.loads(body))
                    self.send_response(200)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Mailbox:
    async def handle_DATA(self, server, session, envelope) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.rcpt_tos, message, message["Subject"].strip()))
        return "250 OK"

    def __init__(self) -> None:
        self.messages: list = []


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(failures=2)
    yield receiver
    receiver.close()


@pytest.fixture
def smtp_sink() -> Iterator[tuple[Mailbox, int]]:
    mailbox, port = Mailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


ALERT = Alert(
    title="Asset check validated_listings/rejected_share failed",
    severity="ERROR",
    summary="12% of rows rejected",
    run_id="abc123",
    run_url="http://127.0.0.1:3000/runs/abc123",
    asset="validated_listings",
    check="rejected_share",
    numbers={"rejected_share": 0.12, "rejected_rows": 240},
)


def test_a_failing_channel_is_retried_and_a_dead_one_holds_back_no_other(webhook, smtp_sink):
    mailbox, smtp_port = smtp_sink
    dead = WebhookChannel(f"http://127.0.0.1:{free_port()}/nobody", timeout_seconds=2)
    email = SmtpChannel("127.0.0.1", smtp_port, "alerts@price-alchemy.test", ["oncall@price-alchemy.test"])
    deliveries = deliver(ALERT, [WebhookChannel(webhook.url), dead, email], attempts=3, backoff_seconds=0.05)
    outcome = {d.channel: d for d in deliveries}
    assert deliveries[0].delivered and deliveries[0].attempts == 3  # two 503s, then delivered
    assert not deliveries[1].delivered and deliveries[1].attempts == 3 and "Connection refused" in deliveries[1].error
    assert outcome["email"].delivered and outcome["email"].attempts == 1

    (body,) = webhook.bodies
    assert "[ERROR] Asset check validated_listings/rejected_share failed" in body["text"]
    assert "<http://127.0.0.1:3000/runs/abc123|" in body["text"]
    fields = [f["text"] for block in body["blocks"] if "fields" in block for f in block["fields"]]
    assert "*rejected_share*\n0.12" in fields and "*Check*\nrejected_share" in fields
    ((recipients, message, subject),) = mailbox.messages
    assert recipients == ["oncall@price-alchemy.test"]
    assert subject == "[Price Alchemy] ERROR: Asset check validated_listings/rejected_share failed"
    text = message.get_content()
    assert "rejected_rows: 240" in text and "http://127.0.0.1:3000/runs/abc123" in text


def test_sensor_alerts_once_per_failed_check_and_failed_run(tmp_path, webhook, smtp_sink):
    mailbox, smtp_port = smtp_sink
    webhook.failures = 0
    resources = resources_under(tmp_path)
    path = write_synthetic_listings(tmp_path / "listings.tsv", 2_000, seed=1, start=datetime(2026, 9, 1, tzinfo=UTC))
    lines = path.read_text().splitlines(keepends=True)
    for index in range(1, 201):  # 10 % of rows get an impossible condition: rejected_share fails
        fields = lines[index].split("\t")
        fields[2] = "9"
        lines[index] = "\t".join(fields)
    path.write_text("".join(lines))
    ingest_listings_file(path, resources["warehouse"].open())
    alerting = AlertingResource(
        dagster_url="http://127.0.0.1:3999",
        webhook_url=webhook.url,
        smtp_host="127.0.0.1",
        smtp_port=smtp_port,
        smtp_recipients=["oncall@price-alchemy.test"],
    )

    def tick(instance, cursor=None):
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"alerting": alerting})
        return failure_alert_sensor(context)

    with dg.instance_for_test() as instance:
        listings = [raw_listings, validated_and_rejected_listings, validated_listings_checks]
        dg.materialize(listings, resources=resources, instance=instance, raise_on_error=False)
        first = tick(instance)  # starts from now: the failures above are history
        assert not webhook.bodies and "from now on" in first.skip_reason.skip_message

        checked = dg.materialize(listings, resources=resources, instance=instance, raise_on_error=False)
        failed_checks = sorted(e.check_name for e in checked.get_asset_check_evaluations() if not e.passed)
        broken = dg.materialize(
            [raw_listings],
            resources=resources,
            instance=instance,
            run_config={"ops": {"raw_listings": {"config": {"start": "yesterday"}}}},
            raise_on_error=False,
        )
        assert not broken.success and failed_checks == ["freshness", "rejected_share"]
        alerted = tick(instance, first.cursor)
        assert alerted.skip_reason.skip_message == "4 alerts sent"  # the failed ERROR check also fails its run
        again = tick(instance, alerted.cursor)  # as after a daemon restart
        assert again.skip_reason.skip_message == "no new failures"

    titles = sorted(body["blocks"][0]["text"]["text"] for body in webhook.bodies)
    assert titles == [
        "Asset check validated_listings/freshness failed",
        "Asset check validated_listings/rejected_share failed",
        "Run of __ephemeral_asset_job__ failed",
        "Run of __ephemeral_asset_job__ failed",
    ]
    rejected = next(body for body in webhook.bodies if "rejected_share failed" in body["text"])
    assert f"http://127.0.0.1:3999/runs/{checked.run_id}" in rejected["text"]
    fields = [f["text"] for block in rejected["blocks"] if "fields" in block for f in block["fields"]]
    assert "*Severity*\nERROR" in fields and "*rejected_share*\n0.1" in fields and "*rejected_rows*\n200" in fields
    assert "rejected_share = 0.1" in rejected["blocks"][1]["text"]["text"]
    run_failure = next(body for body in webhook.bodies if "Steps failed: ['raw_listings']" in body["text"])
    assert f"/runs/{broken.run_id}" in run_failure["text"]
    subjects = sorted(subject for _, _, subject in mailbox.messages)
    assert len(subjects) == 4 and "[Price Alchemy] WARN: Asset check validated_listings/freshness failed" in subjects
