"""Run config made from the plain dataclasses: one source of defaults, every knob in the launchpad."""

import dataclasses

import dagster as dg

from price_alchemy_assets.defs.features_and_model import FeaturesConfig, TuningConfig
from price_alchemy_assets.defs.listings import ValidationConfig
from price_alchemy_assets.defs.resources import DriftMonitorResource
from price_alchemy_assets.defs.run_config import dataclass_from_config
from price_alchemy_assets.listings.validation import ValidationRules
from price_alchemy_assets.model.bundle import TrainingConfig
from price_alchemy_assets.model.features import FeaturizerConfig
from price_alchemy_assets.model.mlp import MLPConfig
from price_alchemy_assets.monitoring.drift_thresholds import DriftThresholds


def names(dataclass_type) -> set[str]:
    return {field.name for field in dataclasses.fields(dataclass_type)}


def test_defaults_come_back_as_the_dataclasses_own():
    assert dataclass_from_config(FeaturizerConfig, FeaturesConfig()) == FeaturizerConfig()
    assert dataclass_from_config(TrainingConfig, TuningConfig()) == TrainingConfig()
    assert dataclass_from_config(ValidationRules, ValidationConfig()) == ValidationRules()
    assert DriftMonitorResource().watch_settings().thresholds == DriftThresholds()


def test_every_knob_is_a_field_with_the_dataclass_docstring():
    assert names(FeaturizerConfig) | {"validation_fraction", "test_fraction"} == set(FeaturesConfig.model_fields)
    assert set(TuningConfig.model_fields) == names(TrainingConfig) - {"featurizer"}
    mlp = TuningConfig.model_fields["blend"].annotation.model_fields["mlp"].annotation
    assert set(mlp.model_fields) == names(MLPConfig)
    assert names(DriftThresholds) <= set(DriftMonitorResource.model_fields)
    assert DriftMonitorResource.model_fields["min_share"].description.startswith("Brands and categories below")
    assert FeaturesConfig.model_fields["text_max_features"].description.startswith("Words of the title, category")


def test_a_launchpad_config_reaches_the_asset_as_the_dataclass():
    seen = {}

    @dg.asset
    def tuned(config: TuningConfig) -> None:
        seen["training"] = dataclass_from_config(TrainingConfig, config)

    config = {"budget": {"max_evals": 3}, "space": {"num_leaves": [7, 31]}, "blend": {"mlp": {"networks": 1}}}
    assert dg.materialize([tuned], run_config={"ops": {"tuned": {"config": config}}}).success
    expected = TrainingConfig()
    expected = dataclasses.replace(
        expected,
        budget=dataclasses.replace(expected.budget, max_evals=3),
        space=dataclasses.replace(expected.space, num_leaves=(7, 31)),
        blend=dataclasses.replace(expected.blend, mlp=dataclasses.replace(expected.blend.mlp, networks=1)),
    )
    assert seen["training"] == expected
