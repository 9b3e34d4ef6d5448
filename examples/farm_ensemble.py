"""An ensemble vote: three classifiers, the majority label wins; the first answer of a race.

    python examples/farm_ensemble.py
    mpiexec -n 3 hpcdist exec examples/farm_ensemble.py
"""

import hpcdist as hd


def by_threshold(x: float) -> str:
    return "high" if x > 0.5 else "low"


def by_rounding(x: float) -> str:
    return "high" if round(x) >= 1 else "low"


def contrarian(x: float) -> str:
    return "low" if x > 0.5 else "high"


def main() -> None:
    members = [by_threshold, by_rounding, contrarian]
    with hd.Farm() as farm:
        if farm is not None:
            for x in (0.2, 0.7, 0.9):
                votes = farm.ensemble(members, x, aggregate="all")
                label = farm.ensemble(members, x, aggregate="majority")
                print(f"x={x}: votes {votes} -> {label}")
            print("first answer:", farm.ensemble(members, 0.7, aggregate="first"))


if __name__ == "__main__":
    main()
