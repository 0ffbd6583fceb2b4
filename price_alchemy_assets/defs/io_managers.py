"""IO managers for what the model assets hand each other."""

import tempfile
from pathlib import Path

import dagster as dg
from dagster_gcp import GCSResource
from google.cloud import storage
from pydantic import Field

from price_alchemy_assets.gcs import GcsUrl, download_folder, storage_client, upload_folder
from price_alchemy_assets.model.dataset import TrainingData

TRAINING_DATA_LAST_FILE = "data.json"


class GcpGCSResource(GCSResource):
    """dagster-gcp's GCSResource with the same optional service-account key as the BigQuery
    resource; without one, ADC (Workload Identity on GKE). Every GCS user here gets its client."""

    gcp_credentials: str | None = Field(default=None, description="base64 service-account key; else ADC")

    def get_client(self) -> storage.Client:
        return storage_client(self.project, self.gcp_credentials)


class TrainingDataIOManager(dg.ConfigurableIOManager):
    """Stores TrainingData as parquet + scipy .npz + joblib in one folder per asset key: under
    base_dir, or under gs://gcs_bucket/gcs_prefix when a bucket is given (run pods share no disk).

    An input with `listing_columns` in its metadata loads only those listing columns."""

    base_dir: str = Field(default="", description="local folder holding one subfolder per asset")
    gcs_bucket: str | None = Field(default=None, description="store in this GCS bucket instead of base_dir")
    gcs_prefix: str = Field(default="price-alchemy/training_data", description="object prefix in the bucket")
    gcs: dg.ResourceDependency[GcpGCSResource]

    def _local(self, context) -> Path:
        return Path(self.base_dir).joinpath(*context.asset_key.path)

    def _url(self, context) -> GcsUrl:
        return GcsUrl(self.gcs_bucket, self.gcs_prefix).child(*context.asset_key.path)

    def handle_output(self, context: dg.OutputContext, obj: TrainingData) -> None:
        if not self.gcs_bucket:
            path = obj.save(self._local(context))
            context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})
            return
        url = self._url(context)
        with tempfile.TemporaryDirectory(prefix="training-data-") as staging:
            upload_folder(self.gcs.get_client(), obj.save(Path(staging) / "data"), url, TRAINING_DATA_LAST_FILE)
        context.add_output_metadata({"path": dg.MetadataValue.url(str(url))})

    def load_input(self, context: dg.InputContext) -> TrainingData:
        columns = context.definition_metadata.get("listing_columns")
        if not self.gcs_bucket:
            path = self._local(context)
            if not path.exists():
                raise FileNotFoundError(f"{path}: no stored {context.asset_key.to_user_string()}; materialize it first")
            return TrainingData.load(path, columns)
        with tempfile.TemporaryDirectory(prefix="training-data-") as staging:
            local = Path(staging) / "data"
            download_folder(self.gcs.get_client(), self._url(context), local, TRAINING_DATA_LAST_FILE)
            return TrainingData.load(local, columns)
