"""IO managers for what the model assets hand each other."""

from pathlib import Path

import dagster as dg
from pydantic import Field

from price_alchemy_assets.model.dataset import TrainingData


class TrainingDataIOManager(dg.ConfigurableIOManager):
    """Stores TrainingData as parquet + scipy .npz + joblib under base_dir/<asset key>.

    An input with `listing_columns` in its metadata loads only those listing columns."""

    base_dir: str = Field(description="folder holding one subfolder per asset")

    def _path(self, context) -> Path:
        return Path(self.base_dir).joinpath(*context.asset_key.path)

    def handle_output(self, context: dg.OutputContext, obj: TrainingData) -> None:
        path = obj.save(self._path(context))
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext) -> TrainingData:
        path = self._path(context)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no stored {context.asset_key.to_user_string()}; materialize it first")
        return TrainingData.load(path, context.definition_metadata.get("listing_columns"))
