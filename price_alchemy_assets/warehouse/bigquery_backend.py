"""Production: BigQuery, reached through a client factory (dagster-gcp's resource, or a test emulator)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from google.cloud import bigquery

from price_alchemy_assets.listings.columns import WAREHOUSE_COLUMNS
from price_alchemy_assets.warehouse.base import Session, Warehouse

_TYPES = {"string": "STRING", "int": "INT64", "float": "FLOAT64", "timestamp": "TIMESTAMP"}
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_\-]+$")
STAGING_LIFETIME = timedelta(hours=6)
_SCHEMA = [bigquery.SchemaField(name, _TYPES[kind]) for name, kind in WAREHOUSE_COLUMNS.items()]


def _parameter(name: str, value: Any) -> bigquery.ScalarQueryParameter:
    kinds = ((bool, "BOOL"), (int, "INT64"), (float, "FLOAT64"), (datetime, "TIMESTAMP"), (str, "STRING"))
    kind = next((bq_type for py_type, bq_type in kinds if isinstance(value, py_type)), "STRING")
    return bigquery.ScalarQueryParameter(name, kind, value)


class BigQuerySession(Session):
    def __init__(self, client: bigquery.Client, project: str, dataset: str):
        self.client, self.project, self.dataset = client, project, dataset

    def ref(self, table: str) -> str:
        return f"`{self.table_id(table)}`"

    def table_id(self, table: str) -> str:
        return f"{self.project}.{self.dataset}.{table}"

    def column_type(self, kind: str) -> str:
        return _TYPES[kind]

    def _job(self, sql: str, params: dict[str, Any] | None) -> bigquery.QueryJob:
        config = bigquery.QueryJobConfig(query_parameters=[_parameter(k, v) for k, v in (params or {}).items()])
        return self.client.query(sql, job_config=config)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> pd.DataFrame:
        return self._job(sql, params).result().to_dataframe(create_bqstorage_client=False)

    def execute(self, sql: str, params: dict[str, Any] | None = None) -> int:
        job = self._job(sql, params)
        job.result()
        return int(job.num_dml_affected_rows or 0)

    def load(self, table: str, frame: pd.DataFrame) -> None:
        config = bigquery.LoadJobConfig(schema=_SCHEMA, write_disposition=bigquery.WriteDisposition.WRITE_APPEND)
        payload = frame[list(WAREHOUSE_COLUMNS)].astype({"item_condition_id": "Int64", "shipping": "Int64"})
        self.client.load_table_from_dataframe(payload, self.table_id(table), job_config=config).result()

    def create_listings(self, table: str) -> None:
        dataset = bigquery.Dataset(f"{self.project}.{self.dataset}")
        if self.client.location:
            dataset.location = self.client.location
        self.client.create_dataset(dataset, exists_ok=True)
        super().create_listings(table)

    def create_staging(self, table: str) -> None:
        staging = bigquery.Table(self.table_id(table), schema=_SCHEMA)
        staging.expires = datetime.now(UTC) + STAGING_LIFETIME
        self.client.create_table(staging)


class BigQueryWarehouse(Warehouse):
    def __init__(
        self,
        client_factory: Callable[[], AbstractContextManager[bigquery.Client]],
        project: str,
        dataset: str,
        location: str | None = None,
        listings_table: str = "listings",
    ):
        for label, value in (("project", project), ("dataset", dataset), ("table", listings_table)):
            if not value or not _SAFE_NAME.match(value):
                raise ValueError(f"BigQuery {label} {value!r} is not a valid name")
        self.client_factory, self.project, self.dataset, self.location = client_factory, project, dataset, location
        self.listings_table = listings_table

    def describe(self) -> str:
        return f"BigQuery dataset {self.project}.{self.dataset}"

    @contextmanager
    def session(self) -> Iterator[BigQuerySession]:
        with self.client_factory() as client:
            yield BigQuerySession(client, self.project, self.dataset)
