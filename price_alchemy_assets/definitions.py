"""The Price Alchemy code location: everything in `defs/` (one module per pipeline stage, plus
resources and jobs), found by Dagster's defs-folder loader, so a new asset, check, sensor or
schedule needs no registration here."""

from pathlib import Path

import dagster as dg

from price_alchemy_assets.defs.jobs import MAIN_JOB

__all__ = ["MAIN_JOB", "defs"]

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
