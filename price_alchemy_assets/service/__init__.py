"""The prediction service: a Litestar app serving the champion (see app.py)."""
