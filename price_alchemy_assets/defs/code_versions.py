"""Code versions that follow the code: each asset's is a hash of the source of the modules it runs,
so the Dagster UI marks an asset (and what depends on it) stale when its own logic changes, and
not when an unrelated module does."""

from __future__ import annotations

import hashlib
import importlib
import inspect


def source_version(*modules: str) -> str:
    """12 hex digits of a hash over the named modules' source, in the order given."""
    digest = hashlib.blake2b(digest_size=6)
    for name in modules:
        digest.update(name.encode())
        digest.update(inspect.getsource(importlib.import_module(name)).encode())
    return digest.hexdigest()
