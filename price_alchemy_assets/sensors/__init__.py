"""Sensors: drift-triggered retraining (and, to come, asset-check alerts)."""
