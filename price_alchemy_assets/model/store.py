"""The model store: model bundles by version, and the champion pointer a service can follow.

Layout under the store root:
    models/<version>/        a PriceModel bundle (see bundle.py)
    champion.json            which version is the champion, and its provenance and metrics

The pointer is written to a temporary file and renamed over the old one, so a reader sees the
old champion or the new one, never half of either.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from price_alchemy_assets.model.bundle import PriceModel

CHAMPION_FILE = "champion.json"


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


class ModelStore:
    def __init__(self, root: str | Path):
        self.root = Path(root)

    def version_path(self, version: str) -> Path:
        return self.root / "models" / version

    def save(self, model: PriceModel, version: str) -> Path:
        """Write the bundle to a temporary folder first, so a half-written version never exists."""
        final = self.version_path(version)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=final.parent))
        model.save(staging)
        os.replace(staging, final)
        return final

    def load(self, version: str) -> PriceModel:
        return PriceModel.load(self.version_path(version))

    def champion(self) -> ChampionRecord | None:
        pointer = self.root / CHAMPION_FILE
        if not pointer.exists():
            return None
        return ChampionRecord(**json.loads(pointer.read_text()))

    def load_champion(self) -> tuple[ChampionRecord, PriceModel] | None:
        record = self.champion()
        return None if record is None else (record, PriceModel.load(record.model_path))

    def promote(self, record: ChampionRecord) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=".champion-", suffix=".json", dir=self.root)
        with os.fdopen(handle, "w") as out:
            json.dump(asdict(record), out, indent=2, sort_keys=True, default=str)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, self.root / CHAMPION_FILE)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
