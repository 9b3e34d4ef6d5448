"""A two-stage pipeline: load -> analyse, chained with after= so that stages overlap.

    python examples/farm_pipeline.py
    mpiexec -n 3 hpcdist exec examples/farm_pipeline.py
"""

import numpy as np

import hpcdist as hd
from hpcdist.farm import run_stages


def load(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=100_000)


def analyse(sample: np.ndarray) -> dict:
    return {"mean": float(sample.mean()), "std": float(sample.std())}


def main() -> None:
    with hd.Farm() as farm:
        if farm is not None:
            # Explicit: the second task gets the first one's result as its leading argument.
            first = farm.submit(load, 0)
            print("seed 0:", farm.submit(analyse, after=[first]).result())
            # The same for many items with the stage helper.
            results = [f.result() for f in run_stages(farm, [load, analyse], range(1, 9))]
            print(f"{len(results)} samples, mean of means {np.mean([r['mean'] for r in results]):+.4f}")


if __name__ == "__main__":
    main()
