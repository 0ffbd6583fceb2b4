"""The prediction log on its own: batched background writes readable while they happen, nothing
lost on close, the same on PostgreSQL, and rows kept (then counted when dropped) while the
database is away; and the drift sensor's reading of it (GROUP BY profiles of live traffic)."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

from price_alchemy_assets.devtools.local_servers import free_port
from price_alchemy_assets.listings.columns import SELLER_FIELDS
from price_alchemy_assets.listings.profile import ListingsProfile
from price_alchemy_assets.listings.synthetic import synthetic_market as market
from price_alchemy_assets.monitoring.prediction_log_table import LOGGED_COLUMNS, predictions
from price_alchemy_assets.monitoring.traffic import PredictionLogReader
from price_alchemy_assets.service.prediction_log import LoggedRequest, PredictionLog


def logged(count: int, start: int = 0) -> LoggedRequest:
    """One request that priced `count` listings."""
    listings = [
        {
            "name": f"listing {start + i}",
            "item_condition_id": 3,
            "category_name": None,
            "brand_name": "Nike",
            "shipping": 0,
            "item_description": "a" * 50,
        }
        for i in range(count)
    ]
    prices = [(10.0 + i, 5.0 + i / 2, 20.0 + 2 * i) for i in range(start, start + count)]
    version = f"v{start % 3}"
    return LoggedRequest(datetime.now(UTC), f"r{start}", "predict_batch", version, 1.5 + start, listings, prices)


def stored(url: str, column: str = "name") -> list:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.select(predictions.c[column]).order_by(predictions.c.id)).scalars())
    finally:
        engine.dispose()


def exercise(url: str) -> None:
    log = PredictionLog(url, batch_rows=300, flush_seconds=0.05)
    log.start()
    requests = [logged(100, start) for start in range(0, 2_500, 100)]
    for request in requests:
        log.append(request)
    partial = len(stored(url))  # a reader while the writer works
    log.close()
    names = stored(url)
    assert 0 <= partial <= 2_500 and len(names) == 2_500 and len(set(names)) == 2_500
    # every column as it was appended, row for row
    columns = [column for column in LOGGED_COLUMNS if column != "logged_at"]
    written = [dict(zip(columns, row, strict=True)) for row in zip(*(stored(url, c) for c in columns), strict=True)]
    expected = [
        {
            "request_id": request.request_id,
            "route": request.route,
            "model_version": request.model_version,
            "latency_ms": request.latency_ms,
            **listing,
            **dict(zip(("price", "price_low", "price_high"), prices, strict=True)),
        }
        for request in requests
        for listing, prices in zip(request.listings, request.prices, strict=True)
    ]
    assert written == expected
    assert log.stats() == {"written": 2_500, "pending": 0, "dropped": 0, "last_error": None}
    stamps = stored(url, "logged_at")  # read back as timestamps, as monitoring will read them
    assert all(isinstance(stamp, datetime) for stamp in stamps)
    assert abs(stamps[0].replace(tzinfo=UTC) - datetime.now(UTC)).total_seconds() < 60


def test_sqlite_log_writes_everything_by_close(tmp_path):
    exercise(f"sqlite:///{tmp_path / 'logs' / 'predictions.sqlite'}")


def test_postgres_log_writes_everything_by_close(postgres_database):
    db = postgres_database
    exercise(f"postgresql://{db['user']}@{db['host']}:{db['port']}/{db['db']}")


def test_rows_wait_while_the_database_is_away():
    log = PredictionLog(
        f"postgresql://postgres@127.0.0.1:{free_port()}/nothing", batch_rows=50, flush_seconds=0.05, max_pending=120
    )
    log.start()
    log.append(logged(100))
    log.append(logged(100, 100))
    deadline = time.monotonic() + 20
    while log.stats()["dropped"] < 80 and time.monotonic() < deadline:
        time.sleep(0.1)
    stats = log.stats()
    assert stats["written"] == 0 and stats["pending"] == 120 and stats["dropped"] == 80
    assert "OperationalError" in stats["last_error"]
    log.close()  # gives up after its retries instead of hanging
    assert log.stats()["pending"] == 120


def served_listings(url: str) -> pd.DataFrame:
    """Synthetic listings priced by two model versions, written through the log as the service does."""
    listings = market(1_300, seed=5)[list(SELLER_FIELDS)].head(1_200)
    listings = listings.astype(object).where(listings.notna(), None)
    log = PredictionLog(url, flush_seconds=0.05)
    log.start()
    for version, part in (("v1", listings.iloc[:1_000]), ("v2", listings.iloc[1_000:])):
        records = part.to_dict("records")
        log.append(
            LoggedRequest(
                datetime.now(UTC), "r", "predict_batch", version, 2.0, records, [(9.0, 5.0, 15.0)] * len(records)
            )
        )
    log.close()
    return listings.iloc[:1_000]


def check_traffic_profile(url: str) -> None:
    with PredictionLogReader(url) as reader:
        assert reader.profile("v1").rows == 0 and len(reader.latest("v1", 10)) == 0  # no log yet
    served = served_listings(url)
    expected = ListingsProfile.from_listings(served.assign(price=float("nan")))
    with PredictionLogReader(url) as reader:
        assert reader.profile("v1") == expected and reader.profile("v2").rows == 200
        latest = reader.latest("v1", 50)
    assert list(latest.columns) == list(SELLER_FIELDS) and list(latest["name"]) == list(served["name"].iloc[::-1][:50])


def test_traffic_profile_from_the_sqlite_log_equals_the_profile_of_the_listings(tmp_path):
    url = f"sqlite:///{tmp_path / 'predictions.sqlite'}"
    check_traffic_profile(url)
    assert (tmp_path / "predictions.sqlite").is_file()


def test_traffic_profile_from_the_postgres_log(postgres_database):
    db = postgres_database
    check_traffic_profile(f"postgresql://{db['user']}@{db['host']}:{db['port']}/{db['db']}")
