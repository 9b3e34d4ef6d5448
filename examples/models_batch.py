"""Models on an MPI allocation: train SPMD, register, batch-predict on the farm, vote an ensemble.

    python examples/models_batch.py [REGISTRY_DIR]
    mpiexec -n 3 hpcdist exec examples/models_batch.py [REGISTRY_DIR]

Every rank trains the same MLP on its shard (one Allreduce per step: the result is the
single-process one), rank 0 registers it, then the farm predicts a large input in
batches on the workers and checks the answer against a plain ``model.predict``.
"""

import sys
import tempfile

import numpy as np
from mpi4py import MPI

import hpcdist as hd
from hpcdist.models import MLP, shard, train_data_parallel


def make_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8))
    y = (np.sin(X[:, 0]) + X[:, 1] * X[:, 2] > 0).astype(np.int64)
    return X, y


def main() -> None:
    comm = MPI.COMM_WORLD
    path = sys.argv[1] if len(sys.argv) > 1 else comm.bcast(tempfile.mkdtemp() if comm.rank == 0 else None)
    reg = hd.ModelRegistry(path)

    # 1. Data-parallel training: each rank holds a shard; the same model on every rank after.
    X, y = make_data(2000)
    model = MLP(8, hidden=(32,), n_outputs=2, task="classification", seed=0)
    train_data_parallel(model, shard(X, comm), shard(y, comm), epochs=20, batch_size=128, lr=0.2, seed=1)
    if comm.rank == 0:
        version = reg.register("clf", model, metadata={"epochs": 20}, tags=("demo",))
        print(f"registered clf version {version}; training loss {model.history_[0]:.3f} -> {model.history_[-1]:.3f}")
    comm.Barrier()

    # 2. Batch prediction on the farm (rank 0 coordinates, the others work).
    X_new, y_new = make_data(20_000, seed=1)
    with hd.Farm(strategy="affinity") as farm:
        if farm is not None:
            pred = farm.predict_batch("clf", X_new, registry=reg, batch_size=1000, validate="finite")
            same = np.array_equal(pred, reg.load("clf").predict(X_new))
            rep = farm.last_predict
            print(f"predict_batch: {rep.n_rows} rows in {rep.n_batches} batches, workers "
                  f"{sorted({r for ws in rep.workers for r in ws})}, cache hit rate {rep.hit_rate:.2f}, "
                  f"accuracy {np.mean(pred == y_new):.3f}, equal to model.predict: {same}")

            # 3. A bagged ensemble trained on the workers, then a majority vote.
            members = farm.train_ensemble("bag", MLP(8, (16,), 2, task="classification"), X, y, n_members=3,
                                          registry=reg, epochs=10, batch_size=128, lr=0.2)
            vote = farm.predict_batch(members, X_new, registry=reg, mode="parallel", aggregate="majority")
            print(f"ensemble of {len(members)}: accuracy {np.mean(vote == y_new):.3f}")
            print("ok" if same else "MISMATCH")


if __name__ == "__main__":
    main()
