"""The farm's metrics file, status file and strategy switch at 1, 2, 3 and 4 ranks.

Rank 0 runs the assertions; the workers serve inside ``with Farm(...)`` and get None.
"""

from __future__ import annotations

import time

import pytest
from mpi4py import MPI

from hpcdist.farm import Farm
from hpcdist.farm.strategies import Strategy
from hpcdist.metrics.io import read_metrics
from hpcdist.metrics.status import read_status
from hpcdist.runtime.errors import InputError

pytestmark = pytest.mark.mpi

FAST = dict(heartbeat_interval=0.05, heartbeat_timeout=1.0, backoff=0.0)


def my_rank() -> int:
    return MPI.COMM_WORLD.Get_rank()


def nap_rank(x):
    time.sleep(0.001)
    return my_rank()


def double(x):
    return 2 * x


def boom(x):
    raise ValueError(f"bad value {x}")


class Highest(Strategy):
    """Always the highest free rank."""

    name = "highest"

    def choose(self, task, candidates, view):
        return max(w.rank for w in candidates)


def shared_path(comm, tmp_path, name):
    return comm.bcast(str(tmp_path / name) if comm.rank == 0 else None, root=0)


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_metrics_file_counts_match_what_was_submitted(comm, tmp_path, suffix):
    path = shared_path(comm, tmp_path, "farm" + suffix)
    status_dir = shared_path(comm, tmp_path, "run")
    n_tasks, n_items, chunk, n_bad = 60, 200, 10, 2
    with Farm(comm, metrics=path, status_dir=status_dir, **FAST) as farm:
        if farm is not None:
            ranks = [f.result() for f in [farm.submit(nap_rank, i) for i in range(n_tasks)]]
            assert list(farm.map(double, range(n_items), chunksize=chunk)) == [2 * i for i in range(n_items)]
            bad = [farm.submit(boom, i, retries=1) for i in range(n_bad)]
            assert all(isinstance(f.exception(), ValueError) for f in bad)
            live = farm.metrics()
            assert live["summary"]["completed"] == n_tasks + n_items // chunk
    if comm.rank != 0:
        return
    doc = read_metrics(path)
    head, farm_doc = doc["header"], doc["farm"]
    assert head["kind"] == "farm" and head["ranks"] == comm.size
    summary = farm_doc["summary"]
    submitted = n_tasks + n_items // chunk + n_bad
    assert summary["submitted"] == submitted
    assert summary["completed"] == n_tasks + n_items // chunk
    assert summary["outcomes"] == {"error": n_bad}
    assert summary["retries"] == {"error": n_bad}
    assert summary["pending"] == 0 and summary["running"] == 0
    runs = submitted + n_bad  # each failing task ran twice
    workers = farm_doc["workers"]
    expected_ranks = list(range(1, comm.size)) if comm.size > 1 else [0]
    assert [w["rank"] for w in workers] == expected_ranks
    assert sum(w["tasks"] for w in workers) == runs
    assert sum(f["tasks"] for f in farm_doc["functions"]) == runs
    assert sum(w["errors"] for w in workers) == 2 * n_bad
    fns = {f["fn"].rsplit(".", 1)[-1]: f for f in farm_doc["functions"]}
    assert fns["nap_rank"]["tasks"] == n_tasks and fns["boom"]["errors"] == 2 * n_bad
    assert fns["nap_rank"]["task_time"]["p50"] >= 0.001
    for w in workers:
        # the nap_rank tasks each worker ran are the results that name it
        assert w["functions"].get(fns["nap_rank"]["fn"], {}).get("tasks", 0) == ranks.count(w["rank"])
        assert 0.0 <= w["busy_s"] <= w["wall_s"] + 1e-6
        assert w["idle_s"] == pytest.approx(w["wall_s"] - w["busy_s"], abs=1e-6)
        if comm.size > 1 and w["tasks"]:
            assert w["bytes_sent"] > 0 and w["bytes_received"] > 0
            assert w["messages_sent"] >= 1 and w["messages_received"] >= 1
            assert w["peak_rss"] and w["peak_rss"] > 1 << 20  # from its resource updates
    assert sum(ranks.count(r) for r in expected_ranks) == n_tasks
    assert summary["busy_s"] == pytest.approx(sum(w["busy_s"] for w in workers))
    assert farm_doc["throughput"]["total"] == summary["completed"]
    assert summary["load"]["workers"] == len(expected_ranks)
    assert any(f["kind"] == "farm_imbalance" for f in doc["findings"]) == (len(expected_ranks) > 1)
    st = read_status(status_dir)
    assert st["state"] == "finished" and st["what"] == "farm" and st["unit"] == "tasks/s"
    assert st["done"] == summary["completed"] and st["total"] == submitted and st["failed"] == n_bad


def test_set_strategy_mid_run(comm, tmp_path):
    path = shared_path(comm, tmp_path, "farm.json")
    with Farm(comm, strategy="round_robin", metrics=path, **FAST) as farm:
        if farm is not None:
            first = [farm.submit(nap_rank, i).result() for i in range(12)]  # one at a time
            workers = list(range(1, comm.size)) if comm.size > 1 else [0]
            assert sorted(set(first)) == workers  # round robin visits every worker
            with pytest.raises(InputError, match="unknown strategy"):
                farm.set_strategy("no_such_strategy")
            farm.set_strategy(Highest())
            assert farm.strategy.name == "highest"
            later = [farm.submit(nap_rank, i).result() for i in range(12)]
            assert later == [workers[-1]] * 12
            # a batch at once: queued tasks follow the new strategy too (the highest rank while it has room)
            batch = [f.result() for f in [farm.submit(nap_rank, i) for i in range(6)]]
            assert batch[0] == workers[-1]
            farm.set_strategy("least_loaded")
            load = farm.load()
            assert sum(v["tasks"] for v in load["per_worker"].values()) == 30
    if comm.rank == 0:
        summary = read_metrics(path)["farm"]["summary"]
        assert [c["strategy"] for c in summary["strategies"]] == ["round_robin", "highest", "least_loaded"]
        times = [c["t"] for c in summary["strategies"]]
        assert times == sorted(times)


# ------------------------------------------------- the graph engine's status hook
def test_superstep_status_hook_names_the_slow_rank(comm, tmp_path):
    from hpcdist.graph import load, pagerank
    from hpcdist.metrics import SlowSpec, slow_hook, superstep_status_hook

    rundir = shared_path(comm, tmp_path, "graph-run")
    slow = comm.size - 1
    inner = slow_hook(comm, SlowSpec(rank=slow, factor=4.0)) if comm.size > 1 else None
    hook = superstep_status_hook(comm, rundir, "pagerank", total=30, inner=inner, min_interval=0.05)
    with load("rmat:10", comm, partitioner="block") as graph:
        result = pagerank(graph, tol=1e-300, max_iter=30, backend="numpy", on_superstep=hook)
    hook.finish(done=result.run.supersteps)
    assert result.run.supersteps == 30
    # every rank took part in the same reductions and agrees on what they said
    seen = comm.allgather((hook.syncs, hook.next_sync, hook.last.get("slowest_rank")))
    assert len(set(seen)) == 1
    assert hook.syncs >= 1
    if comm.size > 1:
        assert hook.last["slowest_rank"] == slow
    if comm.rank == 0:
        st = read_status(rundir)
        assert st["state"] == "finished" and st["what"] == "pagerank" and st["unit"] == "supersteps/s"
        assert st["total"] == 30 and st["done"] == 30 and st["rate"] > 0 and st["superstep"] <= 29
        assert st["worker_memory_max"] >= st["memory"] * 0.5
        if comm.size > 1:
            assert st["slowest_rank"] == slow


def test_superstep_status_hook_bad_directory_fails_on_every_rank(comm, tmp_path):
    from hpcdist.metrics import superstep_status_hook

    blocker = shared_path(comm, tmp_path, "file")
    if comm.rank == 0:
        open(blocker, "w").close()
    comm.Barrier()
    with pytest.raises(InputError, match="status directory"):
        superstep_status_hook(comm, blocker + "/run", "pagerank")
