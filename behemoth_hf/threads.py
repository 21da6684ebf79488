"""Intra-op thread settings for shared machines: one thread per CPU this process may use, none busy-waiting.

torch's CPU wheels run their intra-op work on OpenMP (GNU libgomp on Linux). Two defaults hurt on a shared
machine: the thread count comes from the hardware (it ignores the CPU affinity mask and a container's CPU
quota), and an idle OpenMP thread spins before it sleeps, waiting for the next parallel region. When other
processes hold the cores, the spinning threads burn the CPU time the working thread needed: the same
pretraining cost several times more CPU under load (`benchmarks/bench_load.py`, README "Shared machines and
threads"). `configure_threads` sets, through the environment and before torch is imported, the thread count
from the CPUs actually available and the standard `OMP_WAIT_POLICY=PASSIVE` (threads sleep at once). Anything
the user already set is left alone, and subprocesses (accelerate, torchrun) inherit the same settings.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Mapping, MutableMapping
from pathlib import Path


logger = logging.getLogger(__name__)

# torch reads its intra-op thread count from these (MKL_NUM_THREADS wins when both are set): if either is set,
# the user chose the count.
THREAD_COUNT_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
# How idle OpenMP threads wait: the standard variable, libgomp's spin count, and Intel/LLVM OpenMP's block time.
WAIT_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The CPUs this cgroup may use per period (`quota / period`), or None when unlimited or unreadable.

    Reads cgroup v2 `cpu.max` ("max 100000" or "200000 100000"), else v1 `cpu/cpu.cfs_quota_us` (-1 =
    unlimited) with `cpu/cpu.cfs_period_us`."""
    try:
        quota, period = (root / "cpu.max").read_text().split()
    except (OSError, ValueError):
        try:
            quota = (root / "cpu" / "cpu.cfs_quota_us").read_text().strip()
            period = (root / "cpu" / "cpu.cfs_period_us").read_text().strip()
        except OSError:
            return None
    try:
        quota_us, period_us = float(quota), float(period)
    except ValueError:  # "max": no quota
        return None
    if quota_us <= 0 or period_us <= 0:
        return None
    return quota_us / period_us


def available_cpus(affinity: int, quota: float | None) -> int:
    """CPUs a process may keep busy: its affinity count, capped by a cgroup quota rounded up (1.5 CPUs -> 2)."""
    if affinity < 1:
        raise ValueError(f"`affinity` must be >= 1 CPU, got {affinity}")
    if quota is not None and quota <= 0:
        raise ValueError(f"`quota` must be > 0 CPUs or None (unlimited), got {quota}")
    return affinity if quota is None else max(1, min(affinity, math.ceil(quota)))


def thread_settings(environ: Mapping[str, str], cpus: int) -> dict[str, str]:
    """The variables to add to `environ` for a process that may use `cpus` CPUs: the thread count unless the
    user set one (`OMP_NUM_THREADS`/`MKL_NUM_THREADS`), the passive wait policy unless the user chose how
    threads wait (`OMP_WAIT_POLICY`/`GOMP_SPINCOUNT`/`KMP_BLOCKTIME`). Never a variable `environ` has."""
    if cpus < 1:
        raise ValueError(f"`cpus` must be >= 1, got {cpus}")
    settings = {}
    if not any(name in environ for name in THREAD_COUNT_VARIABLES):
        settings["OMP_NUM_THREADS"] = str(cpus)
    if not any(name in environ for name in WAIT_VARIABLES):
        settings["OMP_WAIT_POLICY"] = "PASSIVE"
    return settings


def configure_threads(environ: MutableMapping[str, str] = os.environ) -> dict[str, str]:
    """Apply `thread_settings` for this process's CPUs to `environ`; returns what it set.

    Must run before torch is imported: OpenMP reads these variables once, when torch loads it. If torch is
    already imported, nothing is changed (too late for the wait policy, and the caller may have chosen threads
    with `torch.set_num_threads`)."""
    if "torch" in sys.modules:
        logger.debug("torch is already imported: thread settings left as they are")
        return {}
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    settings = thread_settings(environ, available_cpus(affinity, cgroup_cpu_quota()))
    environ.update(settings)
    logger.debug("thread settings: %s", settings)
    return settings
