"""The prediction log's tables: what the service writes (service/prediction_log.py) and what
monitoring reads as live traffic (monitoring/traffic.py). Defined here, below both, so the
reader needs nothing of the service."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

metadata = sa.MetaData()


def _log_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("logged_at", sa.DateTime(timezone=True), nullable=False, index=True),
        sa.Column("request_id", sa.String(36), nullable=False),
        sa.Column("route", sa.String(40), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False, index=True),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("item_condition_id", sa.Integer, nullable=False),
        sa.Column("category_name", sa.Text),
        sa.Column("brand_name", sa.Text),
        sa.Column("shipping", sa.Integer, nullable=False),
        sa.Column("item_description", sa.Text),
        sa.Column("price", sa.Float, nullable=False),
        sa.Column("price_low", sa.Float, nullable=False),
        sa.Column("price_high", sa.Float, nullable=False),
    )


predictions = _log_table("predictions")
shadow_predictions = _log_table("shadow_predictions")
"""The challenger's prices for the listings the champion priced, in the same shape: request_id and
logged_at are the shadow's own (one id per hand-over, the time of the hand-over, after the
champion's); online_evaluation pairs the two by listing, not by request. A table of its own, so a
log written before challengers existed needs no migration: the shadow process creates it."""

LOGGED_COLUMNS = [column.name for column in predictions.columns if column.name != "id"]


def prediction_log_engine(url: str) -> sa.Engine:
    """An engine for `url`; SQLite files get WAL so readers never block the writer."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _wal(connection, _record) -> None:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")

        return engine
    return sa.create_engine(url, pool_pre_ping=True)
