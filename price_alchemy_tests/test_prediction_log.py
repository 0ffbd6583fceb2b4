"""The prediction log on its own: batched background writes readable while they happen, nothing
lost on close, the same on PostgreSQL, and rows kept (then counted when dropped) while the
database is away."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import sqlalchemy as sa

from price_alchemy_assets.service.prediction_log import LoggedRequest, PredictionLog, predictions

from .serving import free_port


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
    return LoggedRequest(
        datetime.now(UTC), f"r{start}", "predict_batch", "v1", 1.5, listings, [(10.0, 5.0, 20.0)] * count
    )


def stored(url: str, column: str = "name") -> list:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return list(connection.execute(sa.select(predictions.c[column])).scalars())
    finally:
        engine.dispose()


def exercise(url: str) -> None:
    log = PredictionLog(url, batch_rows=300, flush_seconds=0.05)
    log.start()
    for start in range(0, 2_500, 100):
        log.append(logged(100, start))
    partial = len(stored(url))  # a reader while the writer works
    log.close()
    names = stored(url)
    assert 0 <= partial <= 2_500 and len(names) == 2_500 and len(set(names)) == 2_500
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
