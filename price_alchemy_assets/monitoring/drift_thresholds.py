"""When a batch of listings counts as drifted, and how often the drift watch may act on it.

Apart from the drift computations (drift.py, drift_watch.py) so the settings can state these
defaults without loading numpy, scipy or the model code.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class DriftThresholds:
    psi: float = 0.2
    """A feature whose PSI exceeds this has drifted (0.1-0.25 is the usual "moderate" band)."""
    unseen_share: float = 0.1
    """Drift when this share of the batch has a category or brand the champion never saw."""
    min_rows: int = 500
    """Smaller batches are reported but never trigger: their PSI is mostly noise."""
    min_share: float = 0.01
    """Brands and categories below this share of the reference are pooled before PSI."""
    oov_increase: float = 0.05
    """Drift when the share of out-of-vocabulary words exceeds the reference share (held-out training data) by this."""
    rmsle_increase: float = 0.05
    """Drift when the champion's RMSLE on newly labelled listings exceeds its evaluation RMSLE by this."""
    min_labelled: int = 200
    """Labelled listings needed before their error is judged."""


@dataclass(frozen=True)
class DriftWatchSettings:
    thresholds: DriftThresholds = DriftThresholds()
    labelled_sample: int = 2_000
    """New labelled listings scored per evaluation, at most."""
    cooldown: timedelta = timedelta(minutes=60)
    """Least time between two drift-triggered retrainings."""
