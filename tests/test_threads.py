"""Thread settings at `behemoth` start-up: chosen from the CPUs the process may use, never over the user's own."""

import os
import subprocess
import sys

import pytest

from behemoth_hf.threads import available_cpus, cgroup_cpu_quota, configure_threads, thread_settings


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "PASSIVE"}),
        ({"PATH": "/bin"}, {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "PASSIVE"}),
        ({"OMP_NUM_THREADS": "8"}, {"OMP_WAIT_POLICY": "PASSIVE"}),
        ({"MKL_NUM_THREADS": "1"}, {"OMP_WAIT_POLICY": "PASSIVE"}),
        ({"OMP_WAIT_POLICY": "ACTIVE"}, {"OMP_NUM_THREADS": "3"}),
        ({"GOMP_SPINCOUNT": "10000"}, {"OMP_NUM_THREADS": "3"}),
        ({"KMP_BLOCKTIME": "200"}, {"OMP_NUM_THREADS": "3"}),
        ({"OMP_NUM_THREADS": "", "OMP_WAIT_POLICY": ""}, {}),  # set, even empty: the user's choice
    ],
)
def test_thread_settings_fill_only_what_the_user_left_unset(environ, expected):
    assert thread_settings(environ, 3) == expected


def test_thread_settings_refuse_no_cpus():
    with pytest.raises(ValueError, match="`cpus` must be >= 1, got 0"):
        thread_settings({}, 0)


@pytest.mark.parametrize(
    ("affinity", "quota", "expected"),
    [(4, None, 4), (16, 2.0, 2), (16, 1.5, 2), (2, 16.0, 2), (8, 0.5, 1), (1, None, 1)],
)
def test_available_cpus_is_the_affinity_capped_by_the_quota(affinity, quota, expected):
    assert available_cpus(affinity, quota) == expected


@pytest.mark.parametrize(("affinity", "quota", "name"), [(0, None, "affinity"), (4, 0.0, "quota"), (4, -1.0, "quota")])
def test_available_cpus_refuses_impossible_inputs(affinity, quota, name):
    with pytest.raises(ValueError, match=f"`{name}` must be"):
        available_cpus(affinity, quota)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2.0),
        ({}, None),
    ],
)
def test_cgroup_cpu_quota_reads_v2_then_v1(tmp_path, files, expected):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_quota(tmp_path) == expected


def test_configure_threads_changes_nothing_once_torch_is_imported(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", sys.modules.get("torch", object()))
    environ = {}
    assert configure_threads(environ) == {} and environ == {}


def test_configure_threads_sets_the_given_environment(monkeypatch):
    monkeypatch.delitem(sys.modules, "torch", raising=False)
    environ = {"OMP_NUM_THREADS": "1"}
    assert configure_threads(environ) == {"OMP_WAIT_POLICY": "PASSIVE"}
    assert environ == {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}


# A command added for the test: what torch and OpenMP see once `behemoth` has started and a command imports torch.
PROBE = """
import os, sys
from behemoth_hf import cli

def probe(argv):
    "Print torch's thread count and the OpenMP variables."
    import torch
    print(torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS"), os.environ.get("OMP_WAIT_POLICY"))
    return 0

cli.COMMANDS["probe"] = probe
sys.exit(cli.main(["probe"]))
"""


def run_probe(**variables: str) -> list[str]:
    # conftest pins OMP_NUM_THREADS/MKL_NUM_THREADS for this process: the probe starts without them.
    cleared = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")
    env = {key: value for key, value in os.environ.items() if key not in cleared} | variables
    result = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True)
    return result.stdout.split()


def test_behemoth_gives_torch_one_thread_per_available_cpu_and_passive_waits():
    cpus = available_cpus(len(os.sched_getaffinity(0)), cgroup_cpu_quota())
    assert run_probe() == [str(cpus), str(cpus), "PASSIVE"]


def test_behemoth_leaves_the_users_thread_settings_alone():
    # One thread: below what `behemoth` picks on any machine with 2 or more CPUs (torch caps a larger count at the
    # machine's cores, so a count above ours would not reach torch as given).
    assert run_probe(OMP_NUM_THREADS="1", OMP_WAIT_POLICY="ACTIVE") == ["1", "1", "ACTIVE"]
    assert run_probe(MKL_NUM_THREADS="1")[:2] == ["1", "None"]
