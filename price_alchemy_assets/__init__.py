"""Price Alchemy: price suggestions for second-hand listings, built on Dagster assets."""

__version__ = "0.1.0"
