"""The Dagster wiring, one module per pipeline stage (listings, features_and_model, evaluation,
drift, alerts) plus resources, IO managers and jobs; `definitions.py` loads them all with
`dg.load_from_defs_folder`. Thin: the work is done by the layers below."""
