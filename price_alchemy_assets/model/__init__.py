"""The price model: split, featurizer, rules baseline, metrics. Plain Python, no Dagster."""
