"""Per-rank metrics as a service: timers, per-superstep records reduced over ranks, the task
farm's counters (:mod:`hpcdist.metrics.farm`), findings, metrics files, the slow-rank
injector and the live status file.

```
from hpcdist.metrics import RunMetrics, write_metrics
m = RunMetrics.from_bsp(comm, result.run, algorithm="pagerank", graph_info={...})  # collective
write_metrics("run.jsonl", m, comm=comm)                                           # rank 0 writes
```

See docs/metrics.md for the file format. Sits beside :mod:`hpcdist.checkpoint` above
:mod:`hpcdist.runtime`; it does not import :mod:`hpcdist.graph` (a ``BSPRun`` and a
``DistGraph`` are read by attribute).
"""

from hpcdist.metrics.findings import find_bound, find_imbalance, find_stragglers, finding
from hpcdist.metrics.io import check_metrics_path, farm_task_record, metrics_records, read_metrics, write_metrics
from hpcdist.metrics.run import (
    FIELDS,
    RunMetrics,
    Stats,
    StepRecorder,
    aggregate_arrays,
    graph_info,
    metrics_for_run,
    peak_rss_bytes,
)
from hpcdist.metrics.slow import SlowSpec, parse_slow, slow_hook, slow_spec, slowdown
from hpcdist.metrics.farm import FarmStats, LogHistogram, farm_findings, farm_metrics, load_spread
from hpcdist.metrics.findings import find_drift
from hpcdist.metrics.status import StatusWriter, SuperstepStatus, read_status, status_hook, superstep_status_hook
from hpcdist.metrics.timer import Timer

__all__ = [
    "Timer",
    "FIELDS",
    "RunMetrics",
    "Stats",
    "StepRecorder",
    "aggregate_arrays",
    "graph_info",
    "metrics_for_run",
    "peak_rss_bytes",
    "finding",
    "find_stragglers",
    "find_bound",
    "find_imbalance",
    "write_metrics",
    "check_metrics_path",
    "read_metrics",
    "metrics_records",
    "farm_task_record",
    "SlowSpec",
    "parse_slow",
    "slow_spec",
    "slowdown",
    "slow_hook",
    "StatusWriter",
    "SuperstepStatus",
    "read_status",
    "status_hook",
    "superstep_status_hook",
    "FarmStats",
    "LogHistogram",
    "farm_metrics",
    "farm_findings",
    "load_spread",
    "find_drift",
]
