"""Run PageRank on a generated graph and write a metrics file (a demo and a launch-test helper).

    mpiexec -n 4 python tests/scripts/metrics_pagerank.py OUT.json[l] [GRAPH] [MAX_ITER]

``HPCDIST_SLOW=rank:R,factor:F`` slows one rank (see hpcdist.metrics.slow). The tolerance
is tiny so that the run does all MAX_ITER supersteps.
"""

import sys

from mpi4py import MPI

from hpcdist.graph import load, pagerank
from hpcdist.metrics import metrics_for_run, slow_hook, write_metrics


def main() -> None:
    out = sys.argv[1]
    spec = sys.argv[2] if len(sys.argv) > 2 else "rmat:12"
    max_iter = int(sys.argv[3]) if len(sys.argv) > 3 else 30
    comm = MPI.COMM_WORLD.Dup()
    with load(spec, comm, partitioner="block") as graph:
        result = pagerank(graph, tol=1e-300, max_iter=max_iter, backend="numpy", on_superstep=slow_hook(comm))
        metrics = metrics_for_run(comm, graph, result, "pagerank")
        write_metrics(out, metrics, comm=comm)
        if comm.Get_rank() == 0:
            for f in metrics.findings():
                print(f["severity"], f["message"])
    comm.Free()


if __name__ == "__main__":
    main()
