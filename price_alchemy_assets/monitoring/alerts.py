"""Alerts: one message per failure, sent to every configured channel.

Channels are a Slack-compatible webhook, e-mail over SMTP and the log. Each channel is tried in
its own thread with its own retries, so a channel that is down or slow never holds back the
others; `deliver` reports per channel what happened. Nothing here knows about Dagster: the
alert sensor turns failed checks and runs into `Alert`s.
"""

from __future__ import annotations

import json
import logging
import smtplib
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Alert:
    title: str
    """One line: what failed, e.g. "Asset check validated_listings/row_count failed"."""
    severity: str
    """ERROR or WARN (a check's severity; failed runs are ERROR)."""
    summary: str
    run_id: str
    run_url: str
    asset: str | None = None
    check: str | None = None
    job: str | None = None
    numbers: Mapping[str, float | int] = field(default_factory=dict)
    """The measured values the check recorded."""

    def details(self) -> list[tuple[str, str]]:
        pairs = [("Severity", self.severity), ("Asset", self.asset), ("Check", self.check), ("Job", self.job)]
        pairs += [("Run", self.run_id)] + [(name, f"{value:g}") for name, value in self.numbers.items()]
        return [(name, value) for name, value in pairs if value is not None]

    def text(self) -> str:
        lines = [f"[{self.severity}] {self.title}", self.summary, ""]
        lines += [f"{name}: {value}" for name, value in self.details()]
        return "\n".join([*lines, "", f"Open the run in Dagster: {self.run_url}"])


class AlertChannel(Protocol):
    name: str

    def send(self, alert: Alert) -> None:
        """Raise on failure; the caller retries."""


@dataclass(frozen=True)
class WebhookChannel:
    """POSTs Slack-compatible JSON (text for any receiver, blocks for Slack) to an incoming webhook."""

    url: str
    timeout_seconds: float = 10.0
    name: str = "webhook"

    @staticmethod
    def payload(alert: Alert) -> dict:
        icon = ":red_circle:" if alert.severity == "ERROR" else ":warning:"
        return {
            "text": f"{icon} [{alert.severity}] {alert.title}: {alert.summary} <{alert.run_url}|Open the run>",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": f"{alert.title}"[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": alert.summary[:2900] or alert.title}},
                {
                    "type": "section",
                    "fields": [{"type": "mrkdwn", "text": f"*{name}*\n{value}"} for name, value in alert.details()][
                        :10
                    ],
                },
                {"type": "section", "text": {"type": "mrkdwn", "text": f"<{alert.run_url}|Open the run in Dagster>"}},
            ],
        }

    def send(self, alert: Alert) -> None:
        request = urllib.request.Request(
            self.url,
            data=json.dumps(self.payload(alert)).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
            response.read()


@dataclass(frozen=True)
class SmtpChannel:
    host: str
    port: int
    sender: str
    recipients: Sequence[str]
    username: str | None = None
    password: str | None = None
    starttls: bool = False
    timeout_seconds: float = 10.0
    name: str = "email"

    def message(self, alert: Alert) -> EmailMessage:
        message = EmailMessage()
        message["Subject"] = f"[Price Alchemy] {alert.severity}: {alert.title}"
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(alert.text())
        return message

    def send(self, alert: Alert) -> None:
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_seconds) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(self.message(alert))


@dataclass(frozen=True)
class LogChannel:
    logger: logging.Logger = log
    name: str = "log"

    def send(self, alert: Alert) -> None:
        level = logging.ERROR if alert.severity == "ERROR" else logging.WARNING
        self.logger.log(level, "ALERT %s", alert.text().replace("\n", " | "))


@dataclass(frozen=True)
class Delivery:
    channel: str
    delivered: bool
    attempts: int
    error: str | None = None


def _with_retries(channel: AlertChannel, alert: Alert, attempts: int, backoff_seconds: float, sleep) -> Delivery:
    error = None
    for attempt in range(1, attempts + 1):
        try:
            channel.send(alert)
            return Delivery(channel.name, True, attempt)
        except (OSError, smtplib.SMTPException, urllib.error.URLError) as failure:
            error = f"{type(failure).__name__}: {failure}"
            if attempt < attempts:
                sleep(backoff_seconds * 2 ** (attempt - 1))
    return Delivery(channel.name, False, attempts, error)


def deliver(
    alert: Alert,
    channels: Sequence[AlertChannel],
    attempts: int = 3,
    backoff_seconds: float = 0.5,
    sleep: Callable[[float], None] = time.sleep,
) -> list[Delivery]:
    """Send `alert` on every channel at once, each retried with exponential backoff."""
    if not channels:
        return []
    with ThreadPoolExecutor(max_workers=len(channels), thread_name_prefix="alert") as pool:
        futures = [pool.submit(_with_retries, c, alert, attempts, backoff_seconds, sleep) for c in channels]
        return [future.result() for future in futures]
