"""train_data_parallel at 1, 2, 3 and 4 ranks equals single-process training within 1e-10.

Every rank builds the same global data set from a seed, keeps its contiguous shard
(``shard``) and trains; the reference is :func:`train_local` on the whole data in this
process (no MPI), with the same seeds. Size 3 gives uneven shards; a shard may be empty.
"""

from __future__ import annotations

import numpy as np
import pytest

from hpcdist.models import MLP, LinearRegression, LogisticRegression, shard, train_data_parallel, train_local
from hpcdist.runtime.errors import InputError

pytestmark = pytest.mark.mpi


def problem(kind, n=157, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    if kind == "regression":
        return X, X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)
    if kind == "multi":
        return X, X @ rng.normal(size=(d, 3))
    return X, np.argmax(X @ rng.normal(size=(d, 3)), axis=1)


MODELS = {
    "linear": (lambda: LinearRegression(5, seed=1), "regression", 0.05),
    "linear-multi": (lambda: LinearRegression(5, n_outputs=3, seed=1), "multi", 0.05),
    "logistic": (lambda: LogisticRegression(5, 3, seed=2), "classes", 0.5),
    "mlp-reg": (lambda: MLP(5, (12, 7), 1, seed=3), "regression", 0.05),
    "mlp-clf": (lambda: MLP(5, (16,), 3, task="classification", activation="relu", seed=4), "classes", 0.2),
}


def assert_close(a, b):
    pa, pb = a.get_params(), b.get_params()
    for k in pa:
        np.testing.assert_allclose(pa[k], pb[k], rtol=0, atol=1e-10, err_msg=k)


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("batch_size", [None, 1, 16, 1000])
def test_equal_to_single_process_at_every_rank_count(comm, name, batch_size):
    make, kind, lr = MODELS[name]
    X, y = problem(kind)
    reference = train_local(make(), X, y, epochs=4, batch_size=batch_size, lr=lr, seed=9)
    model = train_data_parallel(make(), shard(X, comm), shard(y, comm), epochs=4, batch_size=batch_size, lr=lr,
                                comm=comm, seed=9)
    assert_close(model, reference)
    np.testing.assert_allclose(model.history_, reference.history_, rtol=1e-10)
    assert reference.history_[-1] < reference.history_[0]  # it does learn
    # identical on every rank
    gathered = comm.allgather(np.concatenate([p.ravel() for _, p in sorted(model.get_params().items())]))
    for g in gathered:
        np.testing.assert_array_equal(g, gathered[0])


def test_uneven_and_empty_shards(comm):
    X, y = problem("regression", n=23)
    # rank r holds rows of its own choosing as long as the shards are contiguous in rank order
    bounds = np.linspace(0, len(X), comm.size + 1).astype(int)
    if comm.size > 1:
        bounds[1] = 0  # rank 0 holds nothing
    lo, hi = bounds[comm.rank], bounds[comm.rank + 1]
    ref = train_local(MLP(5, (4,), seed=0), X, y, epochs=3, batch_size=5, lr=0.05, seed=1)
    got = train_data_parallel(MLP(5, (4,), seed=0), X[lo:hi], y[lo:hi], epochs=3, batch_size=5, lr=0.05,
                              comm=comm, seed=1)
    assert_close(got, ref)


def test_bad_input_fails_on_every_rank(comm):
    X, y = problem("regression", n=10)
    bad_y = y[:-1] if comm.rank == comm.size - 1 else y  # only one rank sees the problem
    with pytest.raises(InputError, match="rows"):
        train_data_parallel(LinearRegression(5), X, bad_y, epochs=1, comm=comm)
    with pytest.raises(InputError, match="needs a model with"):
        train_data_parallel(object(), X, y, epochs=1, comm=comm)


def test_full_data_on_every_rank_and_models_sized_from_the_data(comm):
    X, y = problem("classes", n=90)
    ref = train_local(LogisticRegression(n_classes=3, seed=5), X, y, epochs=2, batch_size=20, lr=0.3, seed=4)
    assert ref.config["n_features"] == 5
    got = train_data_parallel(LogisticRegression(n_classes=3, seed=5), X, y, epochs=2, batch_size=20, lr=0.3,
                              comm=comm, seed=4, full_data=True)
    assert_close(got, ref)
    # an MLP built without n_features, and a rank with an empty shard that cannot see the width
    lo, hi = 0, len(X)
    if comm.size > 1:  # rank 0 holds nothing, the others split the rows
        cuts = np.linspace(0, len(X), comm.size).astype(int)
        lo, hi = (0, 0) if comm.rank == 0 else (cuts[comm.rank - 1], cuts[comm.rank])
    ref = train_local(MLP(hidden=(6,), n_outputs=3, task="classification", seed=1), X, y, epochs=2, batch_size=30,
                      lr=0.2, seed=0)
    Xs = X[lo:hi] if hi > lo else np.empty((0,))
    got = train_data_parallel(MLP(hidden=(6,), n_outputs=3, task="classification", seed=1), Xs, y[lo:hi], epochs=2,
                              batch_size=30, lr=0.2, comm=comm, seed=0)
    assert_close(got, ref)


def same_error_everywhere(comm, err):
    """The message every rank raised; asserts they are identical."""
    messages = comm.allgather(str(err.value))
    assert all(m == messages[0] for m in messages), messages
    return messages[0]


def still_usable(comm):
    """No message or collective left pending: a normal call on the same communicator works."""
    X, y = problem("regression", n=20)
    ref = train_local(LinearRegression(5, seed=1), X, y, epochs=1, lr=0.05)
    assert_close(train_data_parallel(LinearRegression(5, seed=1), shard(X, comm), shard(y, comm), epochs=1, lr=0.05,
                                     comm=comm), ref)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("batch_size", [None, 16])
def test_a_bad_label_on_one_rank_is_the_same_clean_error_on_every_rank(comm, batch_size):
    X, y = problem("classes", n=60)
    Xs, ys = shard(X, comm), shard(y, comm).copy()
    bad_rank = comm.size - 1
    if comm.rank == bad_rank:
        ys[-1] = 7  # 3 classes: only this rank's shard has it
    model = LogisticRegression(5, 3, seed=2)
    before = {k: v.copy() for k, v in model.get_params().items()}
    with pytest.raises(InputError) as err:
        train_data_parallel(model, Xs, ys, epochs=3, batch_size=batch_size, lr=0.5, comm=comm, seed=1)
    message = same_error_everywhere(comm, err)
    assert f"training failed on rank {bad_rank} computing the gradient of epoch 0, step " in message
    assert "InputError: LogisticRegression: labels must be 0 .. 2, got 7" in message
    if comm.rank == bad_rank:  # the failing rank chains its own exception
        assert isinstance(err.value.__cause__, InputError) and "got 7" in str(err.value.__cause__)
    else:
        assert err.value.__cause__ is None
    if batch_size is None:  # the failure is in the first step: nobody moved
        for k, v in model.get_params().items():
            np.testing.assert_array_equal(v, before[k])
    flat = np.concatenate([p.ravel() for _, p in sorted(model.get_params().items())])
    assert all(np.array_equal(g, flat) for g in comm.allgather(flat))  # the same (last completed) step everywhere
    still_usable(comm)


class RaisesAt(LinearRegression):
    """Raises RuntimeError in its gradient on the given ranks from the given call on."""

    def __init__(self, ranks, at_call, rank, **kw):
        super().__init__(**kw)
        self.ranks, self.at_call, self.rank, self.calls = set(ranks), at_call, rank, 0

    def loss_grad_sum(self, X, y):
        self.calls += 1
        if self.rank in self.ranks and self.calls >= self.at_call:
            raise RuntimeError(f"boom on {self.rank}")
        return super().loss_grad_sum(X, y)


@pytest.mark.timeout(30)
def test_an_exception_in_any_model_on_some_ranks_does_not_hang(comm):
    X, y = problem("regression", n=40)
    failing = [comm.size - 1] if comm.size < 3 else [1, 2]
    model = RaisesAt(failing, 3, comm.rank, n_features=5, seed=0)
    with pytest.raises(InputError) as err:
        train_data_parallel(model, shard(X, comm), shard(y, comm), epochs=5, lr=0.05, comm=comm)
    message = same_error_everywhere(comm, err)
    others = " (and 1 other rank)" if len(failing) == 2 else ""
    assert message == (f"training failed on rank {failing[0]}{others} computing the gradient of epoch 2, step 0: "
                       f"RuntimeError: boom on {failing[0]}")
    if comm.rank in failing:
        assert isinstance(err.value.__cause__, RuntimeError) and str(err.value.__cause__) == f"boom on {comm.rank}"
    # two full steps were taken before the failure, identically to two local epochs
    ref = train_local(LinearRegression(5, seed=0), X, y, epochs=2, lr=0.05)
    assert_close(model, ref)
    still_usable(comm)


@pytest.mark.timeout(30)
def test_shards_must_agree_on_the_row_shape(comm):
    X, y = problem("regression", n=30)
    Xs, ys = shard(X, comm), shard(y, comm)
    if comm.size == 1:  # one shard agrees with itself: trains
        train_data_parallel(LinearRegression(5), Xs, ys, epochs=1, comm=comm)
        return
    if comm.rank == comm.size - 1:
        Xs = Xs[:, :4]  # a rank that read one column fewer
    with pytest.raises(InputError, match=rf"rows differ in shape between ranks .*rank {comm.size - 1}: X rows \(4,\)"):
        train_data_parallel(LinearRegression(5), Xs, ys, epochs=1, comm=comm)
    ys2 = ys.reshape(-1, 1) if comm.rank == 0 else ys
    with pytest.raises(InputError, match=r"rank 0: X rows \(5,\), y rows \(1,\)"):
        train_data_parallel(LinearRegression(5), shard(X, comm), ys2, epochs=1, comm=comm)
    still_usable(comm)


@pytest.mark.timeout(30)
def test_every_rank_must_start_from_the_same_parameters(comm):
    X, y = problem("regression", n=30)
    seed = 99 if comm.rank == comm.size - 1 and comm.size > 1 else 1
    if comm.size == 1:  # nothing to disagree with
        train_data_parallel(LinearRegression(5, seed=seed), X, y, epochs=1, comm=comm)
        return
    with pytest.raises(InputError, match=rf"ranks \[{comm.size - 1}\] start from parameters different from rank 0"):
        train_data_parallel(LinearRegression(5, seed=seed), shard(X, comm), shard(y, comm), epochs=1, comm=comm)
    # built without n_features, sized from the data on every rank: the same parameters, accepted
    train_data_parallel(LinearRegression(seed=1), shard(X, comm), shard(y, comm), epochs=1, comm=comm)
    still_usable(comm)
