"""Built-in array models: linear regression, logistic (softmax) regression and a small MLP.

Pure numpy. Each follows the two protocols of :mod:`hpcdist.models`:

* **array model** (what the registry stores without pickle): ``get_params() -> dict of
  arrays``, ``get_config() -> JSON-able dict`` and ``from_params(params, config)``;
* **gradient model** (what :func:`~hpcdist.models.training.train_data_parallel` trains):
  ``loss_grad_sum(X, y) -> (loss_sum, {name: grad_sum})`` with *sums* over the rows, not
  means, so that shards add up exactly to the whole (the trainer divides by the global
  batch size), and ``set_params(params)``.

Parameters are float64 and initialised from ``seed`` alone, so every rank that builds
the same model with the same seed holds the same numbers.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from hpcdist.runtime.errors import InputError

__all__ = ["ArrayModel", "LinearRegression", "LogisticRegression", "MLP", "BUILTIN_MODELS"]


class ArrayModel:
    """Base class: parameters in ``self.params`` (a dict of float64 arrays), config in ``self.config``."""

    def __init__(self, **config: Any) -> None:
        self.config = dict(config)
        self.params: dict[str, np.ndarray] = {}

    def get_params(self) -> dict[str, np.ndarray]:
        """The model's arrays (the arrays themselves, not copies)."""
        return self.params

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        """Replace the arrays; names and shapes must match (any set while not yet initialised)."""
        if not self.params:
            self.params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}
            if self.config.get("n_features") is None and "w" in self.params:
                self.config["n_features"] = int(self.params["w"].shape[0])
            elif self.config.get("n_features") is None and "W0" in self.params:
                self.config["n_features"] = int(self.params["W0"].shape[0])
            return
        for k, v in params.items():
            if k not in self.params or np.shape(v) != self.params[k].shape:
                raise InputError(f"{type(self).__name__}: unexpected parameter {k!r} of shape {np.shape(v)}")
        missing = sorted(set(self.params) - set(params))
        if missing:
            raise InputError(f"{type(self).__name__}: parameters {missing} are missing")
        self.params = {k: np.array(v, dtype=np.float64) for k, v in params.items()}

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-able (what the registry records next to the arrays).

        Returns
        -------
        dict
            A copy: ``type(self)(**model.get_config())`` builds the same architecture.
        """
        return dict(self.config)

    def ensure_initialized(self, n_features: int) -> None:
        """Create the parameters for ``n_features`` inputs if the model was built without them."""
        if self.config.get("n_features") is None:
            self.config["n_features"] = int(n_features)
            self._init_params()
        elif int(self.config["n_features"]) != int(n_features):
            raise InputError(f"{type(self).__name__} expects {self.config['n_features']} features, got {n_features}")

    def _init_params(self) -> None:
        raise NotImplementedError

    def _require_params(self) -> None:
        if not self.params:
            raise InputError(f"{type(self).__name__} has no parameters yet: train it first or give n_features")

    @classmethod
    def from_params(cls, params: dict[str, np.ndarray], config: dict[str, Any]) -> "ArrayModel":
        """Rebuild a model from its arrays and config (how the registry loads it).

        Parameters
        ----------
        params : dict of str to numpy.ndarray
            As :meth:`get_params` returned them.
        config : dict
            As :meth:`get_config` returned it.

        Returns
        -------
        ArrayModel
            A new model of this class holding copies of ``params`` (float64).

        Raises
        ------
        InputError
            Arrays whose names or shapes do not fit the configured architecture.
        TypeError
            A config key the constructor does not take.
        """
        model = cls(**config)
        model.set_params(params)
        return model

    @property
    def nbytes(self) -> int:
        """Bytes held by the parameter arrays (the registry's in-memory size estimate).

        Returns
        -------
        int
        """
        return int(sum(a.nbytes for a in self.params.values()))

    def fit(self, X: np.ndarray, y: np.ndarray, epochs: int = 10, batch_size: int | None = None,
            lr: float = 0.1, seed: int = 0) -> "ArrayModel":
        """Train in this process (no MPI); the same steps as :func:`train_data_parallel`."""
        from hpcdist.models.training import train_local

        train_local(self, X, y, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config.items())
        return f"{type(self).__name__}({args})"


def _as_2d(X: Any) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return X.reshape(len(X), -1) if X.ndim != 2 else X


class LinearRegression(ArrayModel):
    """``y = X @ w + b``, squared loss ``0.5 * sum((pred - y)**2)``.

    Parameters
    ----------
    n_features : int
    n_outputs : int
        1 gives predictions of shape ``(n,)``; more give ``(n, n_outputs)``.
    seed : int
        Initial weights ~ N(0, 0.01).
    """

    def __init__(self, n_features: int | None = None, n_outputs: int = 1, seed: int = 0) -> None:
        super().__init__(n_features=None if n_features is None else int(n_features), n_outputs=int(n_outputs),
                         seed=int(seed))
        if n_features is not None:
            self._init_params()

    def _init_params(self) -> None:
        c = self.config
        rng = np.random.default_rng(c["seed"])
        self.params = {"w": rng.normal(0.0, 0.01, (c["n_features"], c["n_outputs"])), "b": np.zeros(c["n_outputs"])}

    def predict(self, X: Any) -> np.ndarray:
        """Predictions ``X @ w + b``.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
            Rows (higher-dimensional rows are flattened).

        Returns
        -------
        numpy.ndarray
            Shape ``(n,)`` for one output, ``(n, n_outputs)`` for more; float64.
        """
        self._require_params()
        out = _as_2d(X) @ self.params["w"] + self.params["b"]
        return out[:, 0] if self.config["n_outputs"] == 1 else out

    def loss_grad_sum(self, X: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """Squared loss and its gradient, both summed over the rows.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
        y : array_like, shape (n,) or (n, n_outputs)
            Targets.

        Returns
        -------
        loss : float
            ``0.5 * sum((X @ w + b - y) ** 2)``.
        grads : dict of str to numpy.ndarray
            ``{"w": ..., "b": ...}``, sums over the rows (not means).
        """
        X = _as_2d(X)
        r = X @ self.params["w"] + self.params["b"] - np.asarray(y, dtype=np.float64).reshape(len(X), -1)
        return 0.5 * float(np.sum(r * r)), {"w": X.T @ r, "b": r.sum(axis=0)}


def _labels(y: Any, n_classes: int, who: str) -> np.ndarray:
    """Labels as int64, checked: a negative one would silently index from the end."""
    yi = np.asarray(y).astype(np.int64).ravel()
    if len(yi) and (yi.min() < 0 or yi.max() >= n_classes):
        bad = yi[(yi < 0) | (yi >= n_classes)]
        raise InputError(f"{who}: labels must be 0 .. {n_classes - 1}, got {bad[0]} "
                         f"({len(bad)} of {len(yi)} labels out of range)")
    return yi


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class LogisticRegression(ArrayModel):
    """Multinomial logistic regression (softmax; two classes included), labels ``0 .. n_classes-1``.

    Loss: cross-entropy summed over rows. ``predict`` gives labels (int64),
    ``predict_proba`` the class probabilities.
    """

    def __init__(self, n_features: int | None = None, n_classes: int = 2, seed: int = 0) -> None:
        if n_classes < 2:
            raise InputError(f"LogisticRegression needs n_classes >= 2, got {n_classes}")
        super().__init__(n_features=None if n_features is None else int(n_features), n_classes=int(n_classes),
                         seed=int(seed))
        if n_features is not None:
            self._init_params()

    def _init_params(self) -> None:
        c = self.config
        rng = np.random.default_rng(c["seed"])
        self.params = {"w": rng.normal(0.0, 0.01, (c["n_features"], c["n_classes"])), "b": np.zeros(c["n_classes"])}

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (softmax of ``X @ w + b``).

        Parameters
        ----------
        X : array_like, shape (n, n_features)

        Returns
        -------
        numpy.ndarray, shape (n, n_classes)
            Rows sum to 1.
        """
        self._require_params()
        return _softmax(_as_2d(X) @ self.params["w"] + self.params["b"])

    def predict(self, X: Any) -> np.ndarray:
        """The most probable class of each row.

        Parameters
        ----------
        X : array_like, shape (n, n_features)

        Returns
        -------
        numpy.ndarray of int64, shape (n,)
            Labels ``0 .. n_classes-1``.
        """
        return np.argmax(self.predict_proba(X), axis=1).astype(np.int64)

    def loss_grad_sum(self, X: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """Cross-entropy and its gradient, both summed over the rows.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
        y : array_like of int, shape (n,)
            Labels ``0 .. n_classes-1``.

        Returns
        -------
        loss : float
        grads : dict of str to numpy.ndarray
            ``{"w": ..., "b": ...}``, sums over the rows (not means).

        Raises
        ------
        InputError
            A label outside ``0 .. n_classes-1``.
        """
        X = _as_2d(X)
        y = _labels(y, self.config["n_classes"], type(self).__name__)
        p = _softmax(X @ self.params["w"] + self.params["b"])
        rows = np.arange(len(X))
        loss = -float(np.sum(np.log(np.maximum(p[rows, y], 1e-300))))
        d = p.copy()
        d[rows, y] -= 1.0
        return loss, {"w": X.T @ d, "b": d.sum(axis=0)}


_ACTIVATIONS = ("tanh", "relu")


class MLP(ArrayModel):
    """A small multilayer perceptron in numpy.

    Parameters
    ----------
    n_features : int
    hidden : sequence of int
        Units per hidden layer.
    n_outputs : int
        Outputs (regression) or classes (classification).
    task : {"regression", "classification"}
        Squared loss on raw outputs, or softmax cross-entropy with ``predict`` giving labels.
    activation : {"tanh", "relu"}
    seed : int
        Glorot-uniform initial weights from this seed.
    """

    def __init__(self, n_features: int | None = None, hidden: Sequence[int] = (32,), n_outputs: int = 1,
                 task: str = "regression", activation: str = "tanh", seed: int = 0) -> None:
        if task not in ("regression", "classification"):
            raise InputError(f"MLP task must be 'regression' or 'classification', got {task!r}")
        if activation not in _ACTIVATIONS:
            raise InputError(f"MLP activation must be one of {_ACTIVATIONS}, got {activation!r}")
        hidden = [int(h) for h in hidden]
        super().__init__(n_features=None if n_features is None else int(n_features), hidden=hidden,
                         n_outputs=int(n_outputs), task=task, activation=activation, seed=int(seed))
        if n_features is not None:
            self._init_params()

    def _init_params(self) -> None:
        c = self.config
        rng = np.random.default_rng(c["seed"])
        sizes = [c["n_features"], *c["hidden"], c["n_outputs"]]
        self.params = {}
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            lim = np.sqrt(6.0 / (a + b))
            self.params[f"W{i}"] = rng.uniform(-lim, lim, (a, b))
            self.params[f"b{i}"] = np.zeros(b)

    @property
    def n_layers(self) -> int:
        return len(self.config["hidden"]) + 1

    def _act(self, z: np.ndarray) -> np.ndarray:
        return np.tanh(z) if self.config["activation"] == "tanh" else np.maximum(z, 0.0)

    def _act_grad(self, a: np.ndarray) -> np.ndarray:
        return 1.0 - a * a if self.config["activation"] == "tanh" else (a > 0).astype(np.float64)

    def _forward(self, X: np.ndarray) -> list[np.ndarray]:
        acts = [X]
        for i in range(self.n_layers):
            z = acts[-1] @ self.params[f"W{i}"] + self.params[f"b{i}"]
            acts.append(self._act(z) if i < self.n_layers - 1 else z)
        return acts

    def decision_function(self, X: Any) -> np.ndarray:
        """The last layer's raw outputs (logits for classification).

        Parameters
        ----------
        X : array_like, shape (n, n_features)

        Returns
        -------
        numpy.ndarray, shape (n, n_outputs)
        """
        self._require_params()
        return self._forward(_as_2d(X))[-1]

    def predict_proba(self, X: Any) -> np.ndarray:
        """Softmax of :meth:`decision_function` (class probabilities for classification).

        Parameters
        ----------
        X : array_like, shape (n, n_features)

        Returns
        -------
        numpy.ndarray, shape (n, n_outputs)
            Rows sum to 1.
        """
        return _softmax(self.decision_function(X))

    def predict(self, X: Any) -> np.ndarray:
        """Labels (classification) or outputs (regression).

        Parameters
        ----------
        X : array_like, shape (n, n_features)

        Returns
        -------
        numpy.ndarray
            Classification: int64 labels, shape ``(n,)``. Regression: float64, shape
            ``(n,)`` for one output, ``(n, n_outputs)`` for more.
        """
        out = self.decision_function(X)
        if self.config["task"] == "classification":
            return np.argmax(out, axis=1).astype(np.int64)
        return out[:, 0] if self.config["n_outputs"] == 1 else out

    def loss_grad_sum(self, X: np.ndarray, y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
        """Loss and gradient of every layer by backpropagation, both summed over the rows.

        Parameters
        ----------
        X : array_like, shape (n, n_features)
        y : array_like
            Regression: targets, shape ``(n,)`` or ``(n, n_outputs)`` (squared loss
            ``0.5 * sum(err ** 2)``). Classification: labels ``0 .. n_outputs-1``
            (softmax cross-entropy).

        Returns
        -------
        loss : float
        grads : dict of str to numpy.ndarray
            ``{"W0": ..., "b0": ..., ...}``, sums over the rows (not means).

        Raises
        ------
        InputError
            Classification with a label outside ``0 .. n_outputs-1``.
        """
        X = _as_2d(X)
        acts = self._forward(X)
        out = acts[-1]
        if self.config["task"] == "classification":
            yi = _labels(y, self.config["n_outputs"], type(self).__name__)
            p = _softmax(out)
            rows = np.arange(len(X))
            loss = -float(np.sum(np.log(np.maximum(p[rows, yi], 1e-300))))
            delta = p
            delta[rows, yi] -= 1.0
        else:
            delta = out - np.asarray(y, dtype=np.float64).reshape(len(X), -1)
            loss = 0.5 * float(np.sum(delta * delta))
        grads: dict[str, np.ndarray] = {}
        for i in reversed(range(self.n_layers)):
            grads[f"W{i}"] = acts[i].T @ delta
            grads[f"b{i}"] = delta.sum(axis=0)
            if i:
                delta = (delta @ self.params[f"W{i}"].T) * self._act_grad(acts[i])
        return loss, grads


BUILTIN_MODELS = {cls.__name__: cls for cls in (LinearRegression, LogisticRegression, MLP)}
