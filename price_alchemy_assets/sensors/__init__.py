"""Sensors: drift-triggered retraining, and alerts for failed asset checks and runs."""
