"""Listings: the marketplace rows in Kaggle's Mercari format, with no Dagster in sight."""
