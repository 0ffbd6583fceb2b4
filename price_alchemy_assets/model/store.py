"""The model store: model bundles by version, and the champion pointer a service can follow.

Layout under the store's location (a folder, or gs://bucket/path in production):
    models/<version>/        a PriceModel bundle (see bundle.py)
    champion.json            which version is the champion, and its provenance and metrics
    challenger.json          a candidate the gate kept out that the service scores in shadow (optional)

A pointer is replaced in one step (a rename on disk, one object write in GCS), so a reader sees
the old champion or the new one, never half of either; a version is whole before it is named.
Every consumer (assets, sensor, service, batch scoring) loads a bundle through `load_bundle`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from price_alchemy_assets import gcs
from price_alchemy_assets.listings.profile import ListingsProfile
from price_alchemy_assets.model.bundle import PriceModel, read_reference

CHAMPION_FILE = "champion.json"
CHALLENGER_FILE = "challenger.json"
BUNDLE_LAST_FILE = "model.json"
"""Uploaded last, so a GCS bundle holding it is whole."""
CACHED_BUNDLES = 3


class ChampionUnreadable(Exception):
    """The champion pointer, or the bundle it names, cannot be read: the message names which."""


@dataclass(frozen=True)
class ChampionRecord:
    version: str
    model_path: str
    promoted_at: str
    dagster_run_id: str = ""
    mlflow_run_id: str = ""
    registered_model_version: str = ""
    data_version: str = ""
    code_version: str = ""
    training_rows: int = 0
    metrics: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True, default=str)

    @classmethod
    def from_json(cls, text: str, where: str = CHAMPION_FILE) -> ChampionRecord:
        try:
            return cls(**json.loads(text))
        except (ValueError, TypeError) as error:  # not JSON; not an object of these fields
            raise ChampionUnreadable(f"{where}: not a champion record ({error})") from error


class ModelStore:
    """What every store does; subclasses say where the bytes live."""

    location: str

    @property
    def pointer_location(self) -> str:
        return self.location_of(CHAMPION_FILE)

    def location_of(self, pointer: str) -> str:
        return f"{self.location.rstrip('/')}/{pointer}"

    def version_location(self, version: str) -> str:
        raise NotImplementedError

    def save(self, model: PriceModel, version: str) -> str:
        """Stores the bundle as `version`; returns its location (a ChampionRecord's model_path)."""
        raise NotImplementedError

    def _read_pointer(self, pointer: str) -> str | None:
        raise NotImplementedError

    def _write_pointer(self, pointer: str, text: str) -> None:
        """Replaces the pointer in one step."""
        raise NotImplementedError

    def _remove_pointer(self, pointer: str) -> None:
        raise NotImplementedError

    def pointer(self, pointer: str) -> ChampionRecord | None:
        """The record `pointer` (CHAMPION_FILE or CHALLENGER_FILE) holds, None where there is none."""
        text = self._read_pointer(pointer)
        return None if text is None else ChampionRecord.from_json(text, self.location_of(pointer))

    def champion(self) -> ChampionRecord | None:
        return self.pointer(CHAMPION_FILE)

    def challenger(self) -> ChampionRecord | None:
        return self.pointer(CHALLENGER_FILE)

    def promote(self, record: ChampionRecord) -> None:
        """`record` becomes the champion in one step; a challenger pointer naming the same version
        is then removed (it is the champion now)."""
        self._write_pointer(CHAMPION_FILE, record.to_json())
        challenger = self.challenger()
        if challenger is not None and challenger.version == record.version:
            self._remove_pointer(CHALLENGER_FILE)

    def mark_challenger(self, record: ChampionRecord) -> None:
        self._write_pointer(CHALLENGER_FILE, record.to_json())

    def drop_challenger(self) -> None:
        self._remove_pointer(CHALLENGER_FILE)

    def promote_challenger(self, version: str, dagster_run_id: str = "") -> ChampionRecord | None:
        """The challenger becomes the champion through the same one-step pointer swap, if the
        challenger pointer still names `version` (it may have been replaced since it was judged);
        the promoted record, or None when nothing was promoted."""
        challenger = self.challenger()
        if challenger is None or challenger.version != version:
            return None
        record = replace(challenger, promoted_at=now_iso(), dagster_run_id=dagster_run_id or challenger.dagster_run_id)
        self.promote(record)
        return record

    def bundle_dir(self, model_path: str) -> Path:
        """A local folder holding the bundle at `model_path`."""
        if gcs.is_gcs(model_path):
            raise ValueError(f"{model_path}: a GCS bundle, but the model store at {self.location} is a folder")
        return Path(model_path)

    def load_bundle(self, model_path: str) -> PriceModel:
        return PriceModel.load(self.bundle_dir(model_path))

    def read_reference(self, model_path: str) -> tuple[ListingsProfile | None, dict]:
        return read_reference(self.bundle_dir(model_path))

    def load(self, version: str) -> PriceModel:
        return self.load_bundle(self.version_location(version))

    def load_champion(self) -> tuple[ChampionRecord, PriceModel] | None:
        record = self.champion()
        if record is None:
            return None
        try:
            return record, self.load_bundle(record.model_path)
        except Exception as error:  # missing folder, truncated or foreign files: whatever the bundle's readers raise
            raise ChampionUnreadable(
                f"{self.pointer_location} names the bundle {record.model_path}, which cannot be loaded ({error})"
            ) from error


class FolderModelStore(ModelStore):
    """On a local or shared file system (the embedded default, compose's volume)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.location = str(self.root)

    def version_path(self, version: str) -> Path:
        return self.root / "models" / version

    def version_location(self, version: str) -> str:
        return str(self.version_path(version))

    def save(self, model: PriceModel, version: str) -> str:
        """Write the bundle to a temporary folder first, so a half-written version never exists."""
        final = self.version_path(version)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=final.parent))
        model.save(staging)
        os.replace(staging, final)
        return str(final)

    def _read_pointer(self, pointer: str) -> str | None:
        try:
            return (self.root / pointer).read_text()
        except FileNotFoundError:
            return None

    def _write_pointer(self, pointer: str, text: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{Path(pointer).stem}-", suffix=".json", dir=self.root)
        with os.fdopen(handle, "w") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.root / pointer)

    def _remove_pointer(self, pointer: str) -> None:
        (self.root / pointer).unlink(missing_ok=True)


class GcsModelStore(ModelStore):
    """In a GCS bucket (production): bundles are downloaded once into a local cache to be loaded;
    the cache keeps the newest few."""

    def __init__(self, url: str, cache_dir: str | Path, client: Callable[[], object] = gcs.storage_client):
        self.url = gcs.GcsUrl.parse(url)
        self.location = str(self.url)
        self.cache_dir = Path(cache_dir)
        self._make_client, self._client = client, None

    @property
    def client(self):
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def version_location(self, version: str) -> str:
        return str(self.url.child("models", version))

    def save(self, model: PriceModel, version: str) -> str:
        with tempfile.TemporaryDirectory(prefix=f"{version}-") as staging:
            model.save(staging)
            gcs.upload_folder(self.client, Path(staging), self.url.child("models", version), BUNDLE_LAST_FILE)
        return self.version_location(version)

    def _read_pointer(self, pointer: str) -> str | None:
        return gcs.read_text(self.client, self.url.child(pointer))

    def _write_pointer(self, pointer: str, text: str) -> None:
        gcs.write_text(self.client, self.url.child(pointer), text)

    def _remove_pointer(self, pointer: str) -> None:
        gcs.delete(self.client, self.url.child(pointer))

    def bundle_dir(self, model_path: str) -> Path:
        if not gcs.is_gcs(model_path):
            return Path(model_path)
        url = gcs.GcsUrl.parse(model_path)
        local = gcs.download_folder(self.client, url, self.cache_dir / url.bucket / url.path, BUNDLE_LAST_FILE)
        os.utime(local)
        self._prune(keep=local)
        return local

    def _prune(self, keep: Path) -> None:
        """Drop all but the newest cached bundles (loaded models live in memory, not in the files)."""
        cached = sorted(
            (p.parent for p in self.cache_dir.rglob(BUNDLE_LAST_FILE)), key=lambda p: p.stat().st_mtime, reverse=True
        )
        for stale in cached[CACHED_BUNDLES:]:
            if stale != keep:
                shutil.rmtree(stale, ignore_errors=True)


def open_model_store(
    location: str | Path, cache_dir: str | Path | None = None, client: Callable[[], object] | None = None
) -> ModelStore:
    """The store at a folder or a gs:// URL. A GCS store downloads bundles into `cache_dir`;
    `client` makes its GCS client (default: Application Default Credentials)."""
    if not gcs.is_gcs(location):
        return FolderModelStore(location)
    if cache_dir is None:
        raise ValueError(f"{location}: a GCS model store needs a folder to cache bundles in")
    return GcsModelStore(str(location), cache_dir, client or gcs.storage_client)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
