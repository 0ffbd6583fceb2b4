"""A small multilayer perceptron on the sparse listing features, in NumPy (scikit-learn style).

Why our own: the input is a CSR matrix of 10^5 columns, and only the first layer's rows for the
columns a mini-batch touches need an update ("lazy" Adam, as in the Mercari winners' sparse
MLPs). A dense-gradient MLP (scikit-learn's) writes the whole first layer on every step and is
hundreds of times slower at a million listings; a deep-learning framework would be a multi-GB
dependency. Several networks from different seeds are averaged: their variance is what makes
one network weaker than Ridge and their average stronger. The networks train side by side in
threads (scipy's sparse products release the GIL), and on large data fewer of them, for fewer
epochs, so that their cost stays within `max_rows_seen`.

`attribute` explains one listing exactly against the empty listing (all features zero) with
DeepLIFT's rescale rule: the contributions of the listing's own non-zero features add up to
f(listing) - f(empty), and a feature the listing does not have gets nothing.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace

import numpy as np
import scipy.sparse as sp

from price_alchemy_assets.model.features import leading_columns

_BETA1, _BETA2, _EPSILON = 0.9, 0.999, 1e-8
_PARALLEL_ROWS = 256
"""Batches from this many rows compute the first layer on two threads."""


@dataclass(frozen=True)
class MLPConfig:
    hidden: tuple[int, ...] = (128, 64)
    networks: int = 3
    """Sparse MLPs averaged (0: none in the blend)."""
    epochs: int = 5
    batch_size: int = 128
    """The first epoch's smallest batch; batches double each epoch (the Mercari winners' schedule)."""
    first_epoch_steps: int = 40
    """The first batch grows with the data to keep about this many steps in the first epoch..."""
    largest_first_batch: int = 2048
    """...up to this size (at 10^6 listings: ~500 steps)."""
    learning_rate: float = 5e-3
    seed: int = 0
    threads: int = 2
    max_rows_seen: int = 8_000_000
    """networks x epochs x rows at most: above, fewer networks (down to one), then fewer epochs."""

    def within_budget(self, rows: int) -> MLPConfig:
        """The networks and epochs that `rows` listings can afford (at least one of each)."""
        passes = max(1, self.max_rows_seen // max(rows, 1))
        networks = max(1, min(self.networks, passes // self.epochs))
        return replace(self, networks=networks, epochs=max(1, min(self.epochs, passes // networks)))


class _Network:
    """One ReLU network: weights[0] is the (features x hidden) first layer."""

    def __init__(self, weights: list[np.ndarray], biases: list[np.ndarray]):
        self.weights, self.biases = weights, biases

    def forward(self, x: sp.csr_matrix | None, first: np.ndarray | None = None) -> list[np.ndarray]:
        """Activations of each hidden layer, then the output column; `first`: x @ weights[0] where the
        caller has it."""
        first = x @ self.weights[0] if first is None else first
        layers = [np.maximum(first + self.biases[0], 0)]
        for weight, bias in zip(self.weights[1:-1], self.biases[1:-1], strict=True):
            layers.append(np.maximum(layers[-1] @ weight + bias, 0))
        layers.append(layers[-1] @ self.weights[-1] + self.biases[-1])
        return layers


class SparseMLPRegressor:
    """fit(CSR features, targets) then predict; the average of `config.networks` networks.

    Wider feature rows than it was fitted on are cut to its width (the featurizer's trailing blocks
    serve other learners)."""

    def __init__(self, config: MLPConfig = MLPConfig()):
        self.config = config

    def fit(self, x: sp.csr_matrix, y: np.ndarray) -> SparseMLPRegressor:
        x = _csr32(x)
        self.columns_ = x.shape[1]
        self.__dict__.pop("_first_layers", None)
        y = np.asarray(y, dtype=np.float64)
        self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std() or 1.0)
        target = ((y - self.y_mean_) / self.y_scale_).astype(np.float32)
        self.fitted_config_ = self.config.within_budget(x.shape[0])
        with ThreadPoolExecutor(max(1, self.config.threads)) as pool:
            self.networks_ = list(
                pool.map(
                    lambda k: self._train(x, target, np.random.default_rng([self.config.seed, k])),
                    range(self.fitted_config_.networks),
                )
            )
        return self

    def _train(self, x: sp.csr_matrix, target: np.ndarray, rng: np.random.Generator) -> _Network:
        config, rows, width = self.fitted_config_, x.shape[0], x.shape[1]
        sizes = [width, *config.hidden, 1]
        # the first layer sees ~nnz inputs per row, not `width`
        fan_in = [max(1.0, x.getnnz() / max(rows, 1)), *sizes[1:-1]]
        weights = [
            (rng.standard_normal((a, b)) * np.sqrt(2.0 / fan)).astype(np.float32)
            for a, b, fan in zip(sizes, sizes[1:], fan_in, strict=False)
        ]
        biases = [np.zeros(b, np.float32) for b in sizes[1:]]
        network = _Network(weights, biases)
        moments = [(np.zeros_like(p), np.zeros_like(p)) for p in weights + biases]
        touched = np.zeros(width, dtype=np.int64)
        batch = int(np.clip(rows // config.first_epoch_steps, config.batch_size, config.largest_first_batch))
        step = 0
        for _epoch in range(config.epochs):
            order = rng.permutation(rows)
            for start in range(0, rows, batch):
                index = order[start : start + batch]
                xb = x[index]
                layers = network.forward(xb)
                gradient = (layers[-1][:, 0] - target[index]) * (2.0 / len(index))
                grads = self._backward(network, xb, layers, gradient[:, None].astype(np.float32), touched)
                step += 1
                scale = config.learning_rate * np.sqrt(1 - _BETA2**step) / (1 - _BETA1**step)
                self._adam(network, grads, moments, scale)
            batch *= 2
        return network

    @staticmethod
    def _backward(network: _Network, xb: sp.csr_matrix, layers: list[np.ndarray], delta: np.ndarray, touched):
        """Gradients of every layer; the first layer's only for the columns this batch has."""
        weight_grads, bias_grads = [None] * len(network.weights), [None] * len(network.biases)
        for layer in range(len(network.weights) - 1, 0, -1):
            weight_grads[layer] = layers[layer - 1].T @ delta
            bias_grads[layer] = delta.sum(axis=0)
            delta = (delta @ network.weights[layer].T) * (layers[layer - 1] > 0)
        bias_grads[0] = delta.sum(axis=0)
        columns = np.flatnonzero(np.bincount(xb.indices, minlength=len(touched)))
        touched[columns] = np.arange(len(columns))
        compact = sp.csr_matrix((xb.data, touched[xb.indices], xb.indptr), shape=(xb.shape[0], len(columns)))
        weight_grads[0] = (columns, compact.T @ delta)
        return weight_grads + bias_grads

    @staticmethod
    def _adam(network: _Network, grads: list, moments: list, scale: float) -> None:
        parameters = network.weights + network.biases
        for k, (parameter, grad, (mean, square)) in enumerate(zip(parameters, grads, moments, strict=True)):
            if k == 0:  # lazy Adam: only the rows this batch touched move
                rows, grad = grad
                m = _BETA1 * mean[rows] + (1 - _BETA1) * grad
                v = _BETA2 * square[rows] + (1 - _BETA2) * grad * grad
                mean[rows], square[rows] = m, v
                parameter[rows] -= scale * m / (np.sqrt(v) + _EPSILON)
                continue
            mean *= _BETA1
            mean += (1 - _BETA1) * grad
            square *= _BETA2
            square += (1 - _BETA2) * grad * grad
            parameter -= scale * mean / (np.sqrt(square) + _EPSILON)

    def _input(self, x) -> sp.csr_matrix:
        """Float32 CSR rows of the width the networks learned from."""
        return _csr32(leading_columns(x, getattr(self, "columns_", x.shape[1])))

    def predict(self, x: sp.csr_matrix) -> np.ndarray:
        firsts = self._first_products(_csr32(x))
        outputs = np.mean(
            [network.forward(None, first)[-1][:, 0] for network, first in zip(self.networks_, firsts, strict=True)],
            axis=0,
        )
        return outputs.astype(np.float64) * self.y_scale_ + self.y_mean_

    def _first_products(self, x: sp.csr_matrix) -> list[np.ndarray]:
        """Every network's x @ weights[0] from one product with their first layers side by side (one
        pass over x's nonzeros: the first layer is most of a prediction's time), a large batch's
        halves on two threads (scipy's sparse products release the GIL)."""
        stacked = self._stacked_first_layers(x.shape[1])
        if x.shape[0] >= _PARALLEL_ROWS and self.config.threads > 1:
            half = x.shape[0] // 2
            with ThreadPoolExecutor(2) as pool:
                product = np.vstack(list(pool.map(lambda part: part @ stacked, (x[:half], x[half:]))))
        else:
            product = x @ stacked
        width = stacked.shape[1] // len(self.networks_)
        return [product[:, k * width : (k + 1) * width] for k in range(len(self.networks_))]

    def _stacked_first_layers(self, width: int) -> np.ndarray:
        """The networks' first layers as one (features x networks*hidden) array, `width` rows: zero
        rows stand for the columns past those they learned from, so a wider feature row multiplies
        as it is (cutting it costs a lone listing ~80 us). Built on first use; each network's own
        first layer becomes a view of it, so the memory is not doubled."""
        stacked = self.__dict__.get("_first_layers")
        if stacked is None or len(stacked) < width:
            firsts = [network.weights[0] for network in self.networks_]
            learned, hidden = firsts[0].shape
            stacked = np.zeros((max(width, learned), hidden * len(firsts)), dtype=firsts[0].dtype)
            stacked[:learned] = np.hstack(firsts)
            for k, network in enumerate(self.networks_):
                network.weights[0] = stacked[:learned, k * hidden : (k + 1) * hidden]
            self.__dict__["_first_layers"] = stacked
        return stacked[:width]

    def __getstate__(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key != "_first_layers"}

    def attribute(self, row: sp.csr_matrix) -> tuple[float, float, dict[int, float]]:
        """One listing: (f(empty), f(listing), {column: contribution}), contributions summing to the
        difference (DeepLIFT rescale against the all-zero input, averaged over the networks)."""
        row = self._input(row)
        columns, values = row.indices, row.data.astype(np.float64)
        empty_total = listing_total = 0.0
        contributions = np.zeros(len(columns))
        for network in self.networks_:
            layers = network.forward(row)
            empty = network.forward(sp.csr_matrix((1, row.shape[1]), dtype=np.float32))
            multiplier = network.weights[-1][:, 0].astype(np.float64)
            for layer in range(len(layers) - 2, -1, -1):
                active, reference = layers[layer][0].astype(np.float64), empty[layer][0].astype(np.float64)
                pre = _pre_activation(network, layers, row, layer)
                pre_empty = _pre_activation(network, empty, None, layer)
                moved = np.abs(pre - pre_empty) > 1e-9
                ratio = np.where(moved, (active - reference) / np.where(moved, pre - pre_empty, 1.0), pre > 0)
                multiplier = multiplier * ratio
                if layer:
                    multiplier = network.weights[layer].astype(np.float64) @ multiplier
            contributions += values * (network.weights[0][columns].astype(np.float64) @ multiplier)
            empty_total += float(empty[-1][0, 0])
            listing_total += float(layers[-1][0, 0])
        count = len(self.networks_)
        scale = self.y_scale_ / count
        return (
            empty_total * scale + self.y_mean_,
            listing_total * scale + self.y_mean_,
            dict(zip(columns.tolist(), (contributions * scale).tolist(), strict=True)),
        )


def _pre_activation(network: _Network, layers: list[np.ndarray], row: sp.csr_matrix | None, layer: int) -> np.ndarray:
    """Layer `layer`'s input to its ReLU, for one row (`row` None: the empty listing)."""
    if layer == 0:
        start = network.biases[0].astype(np.float64)
        return start if row is None else start + (row @ network.weights[0])[0].astype(np.float64)
    previous = layers[layer - 1][0].astype(np.float64)
    return previous @ network.weights[layer].astype(np.float64) + network.biases[layer]


def _csr32(x) -> sp.csr_matrix:
    x = sp.csr_matrix(x, dtype=np.float32)
    x.sort_indices()
    return x
