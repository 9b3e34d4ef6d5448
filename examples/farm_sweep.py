"""A parameter sweep on the task farm.

    python examples/farm_sweep.py
    mpiexec -n 3 hpcdist exec examples/farm_sweep.py
"""

import math

import hpcdist as hd


def simulate(alpha: float, beta: float) -> float:
    """A stand-in for an expensive simulation: the integral of exp(-alpha x) sin(beta x) on [0, 10]."""
    n = 20_000
    h = 10.0 / n
    return sum(math.exp(-alpha * i * h) * math.sin(beta * i * h) for i in range(n)) * h


def main() -> None:
    grid = [(a / 4, b / 2) for a in range(1, 9) for b in range(1, 9)]
    with hd.Farm(retries=1) as farm:
        if farm is not None:
            values = list(farm.map(simulate, [a for a, _ in grid], [b for _, b in grid]))
            best = max(zip(values, grid))
            print(f"{len(values)} runs on {farm.n_workers} worker(s); best {best[0]:.4f} at alpha, beta = {best[1]}")


if __name__ == "__main__":
    main()
