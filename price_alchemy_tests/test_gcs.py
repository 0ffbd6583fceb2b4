"""The GCS model store and IO managers (production on GKE), against a GCS emulator on 127.0.0.1."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import dagster as dg
import pandas as pd
import pytest
from google.cloud import storage

from price_alchemy_assets.defs.drift import listings_and_traffic_drift_sensor
from price_alchemy_assets.defs.resources import open_warehouse, resources_from_settings
from price_alchemy_assets.devtools.local_servers import running_service
from price_alchemy_assets.gcs import GcsUrl, upload_folder
from price_alchemy_assets.listings.synthetic import synthetic_market as market
from price_alchemy_assets.listings.synthetic import write_synthetic_listings
from price_alchemy_assets.model.store import GcsModelStore, open_model_store
from price_alchemy_assets.settings import load_settings
from price_alchemy_assets.warehouse.ingest import ingest_listings_file
from price_alchemy_tests.conftest import run_cli
from price_alchemy_tests.platform_run import run_all
from price_alchemy_tests.serving import train_champion
from price_alchemy_tests.test_service import LISTING


def objects(bucket: str, prefix: str = "") -> list[str]:
    return sorted(blob.name for blob in storage.Client().list_blobs(bucket, prefix=prefix))


def test_model_store_round_trip_and_local_cache(gcs_bucket, tmp_path):
    store = open_model_store(f"gs://{gcs_bucket}/store", cache_dir=tmp_path / "cache")
    assert isinstance(store, GcsModelStore) and store.champion() is None

    record = train_champion(store, "v1", seed=1, rows=1_500)
    assert record.model_path == f"gs://{gcs_bucket}/store/models/v1"
    assert "store/models/v1/model.json" in objects(gcs_bucket)
    assert store.champion() == record

    # the challenger's pointer beside the champion's; promoting it is one write of champion.json
    store.mark_challenger(replace(record, version="v1-challenger"))
    assert store.challenger().version == "v1-challenger" and "store/challenger.json" in objects(gcs_bucket)
    assert store.promote_challenger("another") is None and store.champion() == record  # not the one judged
    promoted = store.promote_challenger("v1-challenger", dagster_run_id="run-7")
    assert store.champion() == promoted and promoted.dagster_run_id == "run-7"
    assert store.challenger() is None and "store/challenger.json" not in objects(gcs_bucket)
    store.drop_challenger()  # none left: no error
    store.promote(record)

    # another process (the service, the sensor) finds the champion and loads the same bundle
    reader = open_model_store(f"gs://{gcs_bucket}/store", cache_dir=tmp_path / "reader-cache")
    champion, model = reader.load_champion()
    assert champion == record
    listings = market(50, seed=9)
    pd.testing.assert_frame_equal(model.predict(listings), store.load("v1").predict(listings))

    # a loaded bundle is kept: it loads again with the bucket gone
    for name in objects(gcs_bucket, "store/models/v1/"):
        storage.Client().bucket(gcs_bucket).blob(name).delete()
    pd.testing.assert_frame_equal(reader.load_bundle(record.model_path).predict(listings), model.predict(listings))


def test_missing_and_half_uploaded_bundles_are_named(gcs_bucket, tmp_path):
    store = open_model_store(f"gs://{gcs_bucket}/store", cache_dir=tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match=f"gs://{gcs_bucket}/store/models/nothing"):
        store.load("nothing")

    half = tmp_path / "half"
    half.mkdir()
    (half / "lightgbm.txt").write_text("tree")
    storage.Client().bucket(gcs_bucket).blob("store/models/half/lightgbm.txt").upload_from_filename(
        str(half / "lightgbm.txt")
    )
    with pytest.raises(FileNotFoundError, match="model.json is missing"):
        store.load("half")
    assert not (tmp_path / "cache" / gcs_bucket / "store/models/half").exists()
    with pytest.raises(FileNotFoundError, match="last file is missing"):
        upload_folder(storage.Client(), half, GcsUrl(gcs_bucket, "elsewhere"), "model.json")
    assert objects(gcs_bucket, "elsewhere") == []


def test_cache_keeps_the_newest_bundles(gcs_bucket, tmp_path):
    store = open_model_store(f"gs://{gcs_bucket}/store", cache_dir=tmp_path / "cache")
    record = train_champion(store, "v0", seed=2, rows=1_000, promote=False)
    bucket = storage.Client().bucket(gcs_bucket)
    for version in ("v1", "v2", "v3", "v4"):
        for name in objects(gcs_bucket, "store/models/v0/"):
            bucket.copy_blob(bucket.blob(name), bucket, name.replace("/v0/", f"/{version}/"))
        store.load(version)
    cached = sorted(p.parent.name for p in (tmp_path / "cache").rglob("model.json"))
    assert cached == ["v2", "v3", "v4"], cached
    listings = market(20, seed=3)
    evicted = store.load_bundle(record.model_path)  # evicted bundles download again
    pd.testing.assert_frame_equal(evicted.predict(listings), store.load("v4").predict(listings))
    assert sorted(p.parent.name for p in (tmp_path / "cache").rglob("model.json")) == ["v0", "v3", "v4"]


def test_platform_on_gcs(gcs_bucket, price_alchemy_home, tmp_path, monkeypatch):
    """PRICE_ALCHEMY_GCS_BUCKET and a gs:// model store: the main job keeps asset values, training data
    and models in the bucket; the drift sensor, batch scoring and the service read the champion there."""
    monkeypatch.setenv("PRICE_ALCHEMY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("PRICE_ALCHEMY_GCS_BUCKET", gcs_bucket)
    monkeypatch.setenv("PRICE_ALCHEMY_GCS_PREFIX", "platform")
    monkeypatch.setenv("PRICE_ALCHEMY_MODEL_STORE", f"gs://{gcs_bucket}/platform/model_store")
    start = datetime.now(UTC) - timedelta(days=5)
    listings = write_synthetic_listings(tmp_path / "listings.tsv", 3_000, seed=4, start=start, days=5)
    with open_warehouse(load_settings()) as warehouse:
        ingest_listings_file(listings, warehouse)

    resources = resources_from_settings(load_settings())
    with dg.instance_for_test() as instance:
        result = run_all(resources, instance)
        assert result.success
        with dg.build_sensor_context(instance=instance, resources=resources) as context:
            tick = listings_and_traffic_drift_sensor(context)

    stored = objects(gcs_bucket, "platform/")
    champion = load_settings().open_model_store().champion()
    assert champion is not None and champion.model_path.startswith(f"gs://{gcs_bucket}/platform/model_store/models/")
    for expected in (
        "platform/assets/validated_listings",
        "platform/training_data/tfidf_features/data.json",
        "platform/training_data/tfidf_features/train.npz",
        "platform/records/tuned_model",
        "platform/records/eval_report",
        "platform/model_store/champion.json",
        f"platform/model_store/models/{champion.version}/model.json",
    ):
        assert expected in stored, (expected, stored)
    assert not (tmp_path / "data" / "model_store").exists() and not (tmp_path / "data" / "records").exists()
    # the sensor read the champion's training profile from the bucket and judged (no new listings yet)
    # (a SkipReason would mean it found no champion or no profile: it judged nothing)
    assert isinstance(tick, dg.SensorResult) and not tick.run_requests, tick
    assert len(tick.asset_events) == 2 and all(e.asset_key == dg.AssetKey("drift_report") for e in tick.asset_events)

    scored = tmp_path / "scored.csv"
    done = run_cli("predict", str(listings), "--output", str(scored))
    assert done.returncode == 0, done.stderr
    with open(scored) as rows:
        assert sum(1 for _ in csv.DictReader(rows)) == 3_000

    with running_service(champion.model_path.split("/models/")[0], tmp_path) as service, service.client() as client:
        assert client.get("/model").json()["model_version"] == champion.version
        answer = client.post("/predict", json=LISTING)
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == champion.version
