"""Folders in Google Cloud Storage, shared by the GCS model store and the training-data IO manager.

A folder is every object under a prefix. An upload writes its `last` file after all the others, so
a reader that finds that file finds the rest; a download lands in a temporary folder renamed into
place, so a local copy is whole or absent. No Dagster here: the service and the CLI use it too.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import tempfile
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from google.api_core.exceptions import NotFound
from google.cloud import storage

SCHEME = "gs://"


def is_gcs(location: str | Path) -> bool:
    return str(location).startswith(SCHEME)


@dataclass(frozen=True)
class GcsUrl:
    bucket: str
    path: str = ""

    @classmethod
    def parse(cls, url: str) -> GcsUrl:
        if not is_gcs(url):
            raise ValueError(f"{url!r}: not a GCS location (expected gs://bucket/path)")
        bucket, _, path = url[len(SCHEME) :].partition("/")
        if not bucket:
            raise ValueError(f"{url!r}: no bucket named (expected gs://bucket/path)")
        return cls(bucket, path.strip("/"))

    def child(self, *parts: str) -> GcsUrl:
        return GcsUrl(self.bucket, "/".join(p.strip("/") for p in (self.path, *parts) if p.strip("/")))

    @property
    def prefix(self) -> str:
        """The object-name prefix of everything inside this folder."""
        return f"{self.path}/" if self.path else ""

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.path}" if self.path else f"{SCHEME}{self.bucket}"


def storage_client(project: str | None = None, credentials: str | None = None) -> storage.Client:
    """`credentials` is a base64 service-account key, as dagster-gcp's BigQueryResource takes it;
    without one, Application Default Credentials (Workload Identity on GKE). STORAGE_EMULATOR_HOST
    points the client at an emulator, anonymously."""
    if not credentials:
        return storage.Client(project=project)
    from google.oauth2 import service_account

    try:
        info = json.loads(base64.b64decode(credentials))
    except ValueError as error:
        raise ValueError(f"GCP credentials are not a base64-encoded service-account key: {error}") from error
    key = service_account.Credentials.from_service_account_info(info)
    return storage.Client(project=project or info.get("project_id"), credentials=key)


def read_text(client: storage.Client, url: GcsUrl) -> str | None:
    """The object's text, or None when there is no such object."""
    try:
        return client.bucket(url.bucket).blob(url.path).download_as_text()
    except NotFound:
        return None


def write_text(client: storage.Client, url: GcsUrl, text: str) -> None:
    """One object write: readers see the old text or the new, never part of it."""
    client.bucket(url.bucket).blob(url.path).upload_from_string(text, content_type="application/json")


def delete(client: storage.Client, url: GcsUrl) -> None:
    """Remove the object; one that is already gone is no error."""
    with suppress(NotFound):
        client.bucket(url.bucket).blob(url.path).delete()


def upload_folder(client: storage.Client, local: Path, url: GcsUrl, last: str) -> None:
    """Every file under `local` to `url`, `last` (a file name relative to `local`) at the end."""
    files = sorted(p for p in local.rglob("*") if p.is_file())
    names = [p.relative_to(local).as_posix() for p in files]
    if last not in names:
        raise FileNotFoundError(f"{local / last}: the folder's last file is missing; nothing uploaded")
    bucket = client.bucket(url.bucket)
    with suppress(NotFound):  # a folder being replaced is incomplete until the new last file lands
        bucket.blob(url.child(last).path).delete()
    for path, name in sorted(zip(files, names, strict=True), key=lambda item: item[1] == last):
        bucket.blob(url.child(name).path).upload_from_filename(str(path))


def download_folder(client: storage.Client, url: GcsUrl, local: Path, last: str) -> Path:
    """A whole local copy of the folder at `local`, reusing one that is already there."""
    if (local / last).exists():
        return local
    blobs = [b for b in client.list_blobs(url.bucket, prefix=url.prefix) if not b.name.endswith("/")]
    if not any(b.name == url.child(last).path for b in blobs):
        raise FileNotFoundError(f"{url}: no complete folder there ({last} is missing)")
    local.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{local.name}-", dir=local.parent))
    try:
        for blob in blobs:
            target = staging / blob.name[len(url.prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            blob.download_to_filename(str(target))
        try:
            os.replace(staging, local)
        except OSError:  # another process put its whole copy there first
            if not (local / last).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return local
