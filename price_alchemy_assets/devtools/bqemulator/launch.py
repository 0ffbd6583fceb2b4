"""Starts bqemulator (run with .venv-bqemulator's Python, not the project's).

Two fixes the stock emulator needs here: the DuckDB spatial and avro extensions come from
their PyPI wheels (it would otherwise download them at start), and the upload route accepts
the Content-Type '*/*' that google-cloud-bigquery sends for small load_table_from_dataframe
payloads.
"""

import sys

import duckdb_extensions
from bqemulator.api.routes import upload
from bqemulator.cli import main

for extension in ("spatial", "avro"):
    duckdb_extensions.import_extension(extension)
upload._PERMITTED_MEDIA_CONTENT_TYPES = (*upload._PERMITTED_MEDIA_CONTENT_TYPES, "*/*")

if __name__ == "__main__":
    sys.exit(main())
