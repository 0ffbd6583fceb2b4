"""Exact Shapley values of a LightGBM model for one listing against the empty listing.

LightGBM's own `pred_contrib` (TreeSHAP) measures each feature against the training average,
so a listing gets effects for words it does not have ("makeup" in a shoe's title), and with
deep trees on sparse input its numbers were seen to blow up (contributions summing to 2e21
where the prediction was 3.6). Here the reference is one point, the all-zero listing: the
Shapley value of the game v(S) = f(listing's values on S, zeros elsewhere) is computed exactly,
tree by tree. A feature that is zero in the listing cannot change v, so it gets nothing, and
the values add up to f(listing) - f(empty) to rounding.

Per tree, a walk from the root follows both branches where the listing and the empty listing
part ways; each leaf reached belongs to the coalitions that contain the features on its
"listing" side (`on`) and none on its "empty" side (`off`), and such a term's Shapley value is
+value / (a * C(a + b, a)) for each of the a features in `on`, -value / (b * C(a + b, b)) for
each of the b in `off`.
"""

from __future__ import annotations

from math import comb

import lightgbm as lgb
import numpy as np

_DEFAULT_LEFT, _MISSING_SHIFT, _MISSING_ZERO, _CATEGORICAL = 2, 2, 1, 1
_ZERO = 1e-35
"""LightGBM's kZeroThreshold: |value| below it counts as zero for a split whose missing type is Zero."""
_PARALLEL_ROWS = 256
"""Batches from this many rows are predicted on LightGBM's OpenMP threads; smaller ones (a
service's) on the calling thread. A parallel region over a few rows waits for a second core: with
the other core busy, one listing's trees took 40 us on one thread and 50 us to 7.8 ms on two."""


class _Tree:
    """One tree from LightGBM's text format: node arrays, children >= 0 internal, < 0 leaf ~index."""

    def __init__(self, fields: dict[str, str]):
        self.leaf = [float(v) for v in fields["leaf_value"].split()]
        if int(fields["num_leaves"]) == 1:
            self.feature: list[int] = []
            return
        self.feature = [int(v) for v in fields["split_feature"].split()]
        self.threshold = [float(v) for v in fields["threshold"].split()]
        self.left = [int(v) for v in fields["left_child"].split()]
        self.right = [int(v) for v in fields["right_child"].split()]
        decision = [int(v) for v in fields["decision_type"].split()]
        if any(d & _CATEGORICAL for d in decision):
            raise ValueError("categorical splits are not explained (the featurizer makes none)")
        self.default_left = [bool(d & _DEFAULT_LEFT) for d in decision]
        self.zero_is_missing = [(d >> _MISSING_SHIFT) & 3 == _MISSING_ZERO for d in decision]

    def child(self, node: int, value: float) -> int:
        """LightGBM's NumericalDecision for a finite value."""
        if self.zero_is_missing[node] and -_ZERO <= value <= _ZERO:
            return self.left[node] if self.default_left[node] else self.right[node]
        return self.left[node] if value <= self.threshold[node] else self.right[node]


def _parse_trees(model_text: str) -> list[_Tree]:
    trees, fields = [], None
    for line in model_text.splitlines():
        if line.startswith("Tree="):
            fields = {}
            trees.append(fields)
        elif fields is not None and "=" in line:
            key, _, value = line.partition("=")
            fields[key] = value
        elif line.startswith("end of trees"):
            break
    return [_Tree(fields) for fields in trees]


class BoostedTrees:
    """A LightGBM booster with predict (log price) and attribute (one listing, exact).

    The booster may have learned from the leading columns only (ListingFeaturizer.tree_columns):
    wider feature rows are read as far as its width."""

    def __init__(self, booster: lgb.Booster):
        self.booster = booster
        self.columns = booster.num_feature()
        self._trees: list[_Tree] | None = None

    def predict(self, x) -> np.ndarray:
        threads = {} if x.shape[0] >= _PARALLEL_ROWS else {"num_threads": 1}
        if x.shape[1] > self.columns:
            # the trees split on the leading columns only: LightGBM skips the others, without the
            # copy of the rows that cutting them costs (~80 us for a lone listing)
            return self.booster.predict(x, predict_disable_shape_check=True, **threads)
        return self.booster.predict(x, **threads)

    def prepare(self) -> BoostedTrees:
        """Parse the trees for `attribute` now (a service does it once, when it loads the model)."""
        if self._trees is None:
            self._trees = _parse_trees(self.booster.model_to_string())
        return self

    def attribute(self, row) -> tuple[float, float, dict[int, float]]:
        """(f(empty), f(listing), {column: Shapley value}) for a 1-row CSR matrix."""
        trees = self.prepare()._trees
        kept = row.indices < self.columns
        values = dict(zip(row.indices[kept].tolist(), row.data[kept].astype(np.float64).tolist(), strict=True))
        phi: dict[int, float] = {}
        empty_total = listing_total = 0.0
        for tree in trees:
            if not tree.feature:
                empty_total += tree.leaf[0]
                listing_total += tree.leaf[0]
                continue
            stack: list[tuple[int, tuple[int, ...], tuple[int, ...]]] = [(0, (), ())]
            while stack:
                node, on, off = stack.pop()
                if node < 0:
                    value = tree.leaf[~node]
                    a, b = len(on), len(off)
                    listing_total += value if b == 0 else 0.0
                    empty_total += value if a == 0 else 0.0
                    for feature in on:
                        phi[feature] = phi.get(feature, 0.0) + value / (a * comb(a + b, a))
                    for feature in off:
                        phi[feature] = phi.get(feature, 0.0) - value / (b * comb(a + b, b))
                    continue
                feature = tree.feature[node]
                if feature in on:
                    stack.append((tree.child(node, values[feature]), on, off))
                    continue
                if feature in off:
                    stack.append((tree.child(node, 0.0), on, off))
                    continue
                with_listing, with_empty = tree.child(node, values.get(feature, 0.0)), tree.child(node, 0.0)
                if with_listing == with_empty:
                    stack.append((with_listing, on, off))
                else:
                    stack.append((with_listing, (*on, feature), off))
                    stack.append((with_empty, on, (*off, feature)))
        return empty_total, listing_total, phi

    def __getstate__(self) -> dict:
        return {"model": self.booster.model_to_string()}

    def __setstate__(self, state: dict) -> None:
        self.__init__(lgb.Booster(model_str=state["model"]))
