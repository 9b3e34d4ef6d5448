"""The machine a benchmark ran on, for the JSON next to its numbers.

Load averages are kept as text: they say how shared the machine was, and a number
that may be 0 has no place among measurements that must all be positive.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
from datetime import datetime, timezone

from hpcdist.cli.info import package_versions

__all__ = ["machine_details", "cpu_model", "memory_bytes", "busy_cpu_seconds"]



def cpu_model() -> str:
    """The CPU's model name from ``/proc/cpuinfo`` (the platform's guess elsewhere)."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def memory_bytes() -> int | None:
    """Total memory in bytes from ``/proc/meminfo``; None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def busy_cpu_seconds() -> float | None:
    """CPU-seconds the whole machine spent busy since boot (``/proc/stat``); None where unknown.

    Busy is everything but idle and iowait. Differences of two readings, less what the
    benchmark's own processes used, tell how much CPU other processes took meanwhile.
    """
    try:
        with open("/proc/stat") as fh:
            fields = fh.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    ticks = [int(x) for x in fields[1:]]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)
    # guest time is already counted in user time
    busy = sum(ticks[:8]) - idle
    return busy / os.sysconf("SC_CLK_TCK")


def machine_details() -> dict:
    """CPU, cores, memory, MPI library, Python and package versions, host and date (UTC)."""
    from hpcdist.runtime.comm import MPI

    vendor, vendor_version = MPI.get_vendor()
    details = {
        "hostname": socket.gethostname(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cores": os.cpu_count() or 1,
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1),
        "memory_bytes": memory_bytes(),
        "load_average": " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown",
        "os": f"{platform.system()} {platform.release()}",
        "mpi_library": " ".join(MPI.Get_library_version().strip().splitlines()[0].split()),
        "mpi_vendor": f"{vendor} {'.'.join(map(str, vendor_version))}",
        "mpi_standard": "{}.{}".format(*MPI.Get_version()),
        "python": sys.version.split()[0],
        "packages": package_versions(),
    }
    if details["memory_bytes"] is None:
        del details["memory_bytes"]
    return details
