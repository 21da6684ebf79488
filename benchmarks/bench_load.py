"""CPU cost of a fixed pretraining under load: torch's default threads against the settings `behemoth` applies.

    python benchmarks/bench_load.py                 # writes benchmarks/results/load-<UTC time>.json
    python benchmarks/bench_load.py --update        # merges into the committed benchmarks/results/load.json
    python benchmarks/bench_load.py --configs default behemoth --rounds 3 --busy 2

The workload is `behemoth pretrain` of the `tiny` recipe on the `tiny` world, cut to `--steps` updates, run
in a subprocess. Each run is measured by the CPU seconds (user + sys, `getrusage(RUSAGE_CHILDREN)`) and the
wall seconds it took, `alone` and `busy` (next to `--busy` pure-Python busy loops). A shared machine is never
idle, so the configurations are interleaved round by round (the two conditions alternating which goes first)
and the record keeps every run, its 1-minute load average before it, and per case the medians: compare the
ratios between configurations, not the absolute seconds.

Configurations (`--configs`): `default` and the env-var ones run the command *without* `behemoth`'s start-up
thread settings (`behemoth_hf.threads`), i.e. torch's own defaults plus the variables named; `behemoth` runs
the real `behemoth pretrain` entry point, which applies them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from behemoth_hf.config import make_config
from behemoth_hf.generate import generate_dataset
from results_file import add_output_arguments, output_path, write_record


RECIPE = str(Path(__file__).parents[1] / "trainer_configs" / "pretrain_tiny.yaml")
# The command without `cli.main`, hence without its start-up thread settings: how every command ran before.
WITHOUT_SETTINGS = "import sys; from behemoth_hf.cli import COMMANDS; sys.exit(COMMANDS['pretrain'](sys.argv[1:]))"
CONFIGS: dict[str, tuple[bool, dict[str, str]]] = {  # name -> (through `behemoth`'s entry point, extra env)
    "default": (False, {}),
    "passive": (False, {"OMP_WAIT_POLICY": "PASSIVE"}),
    "spincount0": (False, {"GOMP_SPINCOUNT": "0"}),
    "threads1": (False, {"OMP_NUM_THREADS": "1"}),
    "no_tokenizers_parallelism": (False, {"TOKENIZERS_PARALLELISM": "false"}),
    "behemoth": (True, {}),
}
# Variables that would change what a configuration measures if the caller's shell had them set.
CLEARED = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", choices=list(CONFIGS), default=["default", "threads1", "behemoth"])
    parser.add_argument("--rounds", type=int, default=2, help="repeats of every configuration in each condition")
    parser.add_argument("--busy", type=int, default=2, help="busy loops running next to the `busy` runs")
    parser.add_argument("--steps", type=int, default=40, help="optimizer updates of the workload")
    add_output_arguments(parser, "load")
    args = parser.parse_args()
    for name in ("rounds", "busy", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"`--{name}` must be >= 1, got {getattr(args, name)}")
    path = output_path(parser, args, "load")

    runs = []
    with tempfile.TemporaryDirectory() as scratch:
        dataset = generate_dataset(make_config("tiny"), Path(scratch) / "tiny", progress=False)
        for round_index in range(args.rounds):
            conditions = ("alone", "busy") if round_index % 2 == 0 else ("busy", "alone")
            for condition in conditions:
                for config in args.configs:
                    output = Path(scratch) / f"{config}-{condition}-{round_index}"
                    run = measure(config, dataset, output, args.steps, args.busy if condition == "busy" else 0)
                    run.update(config=config, condition=condition, round=round_index)
                    print(json.dumps(run), flush=True)
                    runs.append(run)

    record = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, affinity {len(os.sched_getaffinity(0))}",
        "command": "python benchmarks/bench_load.py " + " ".join(sys.argv[1:]),
        "workload": f"behemoth pretrain --config trainer_configs/pretrain_tiny.yaml (tiny world) --set "
        f"max_steps={args.steps}",
        "busy_loops": args.busy,
        "summary": summarize(runs),
        "runs": runs,
    }
    write_record(path, record, update=args.update, identity={"summary": ("config", "condition")})


def measure(config: str, dataset: Path, output: Path, steps: int, busy: int) -> dict:
    """One run of the workload under `config`, next to `busy` busy loops: CPU and wall seconds."""
    through_cli, extra = CONFIGS[config]
    env = {key: value for key, value in os.environ.items() if key not in CLEARED} | extra
    entry = (
        [sys.executable, "-m", "behemoth_hf.cli", "pretrain"]
        if through_cli
        else [sys.executable, "-c", WITHOUT_SETTINGS]
    )
    argv = entry + [
        "--config", RECIPE, "--dataset", str(dataset), "--output", str(output), "--set", f"max_steps={steps}",
    ]  # fmt: skip
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(busy)]
    try:
        load = os.getloadavg()[0]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        result = subprocess.run(
            argv, check=False, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        wall = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()
    if result.returncode != 0:
        sys.exit(f"{config}: {' '.join(argv)} failed:\n{result.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"cpu_seconds": round(cpu, 2), "wall_seconds": round(wall, 2), "load_1min": round(load, 2)}


def summarize(runs: list[dict]) -> list[dict]:
    """Median CPU and wall seconds per (config, condition), and the CPU ratio to `default` in the same condition."""
    cases: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        cases.setdefault((run["config"], run["condition"]), []).append(run)
    summary = []
    for (config, condition), group in cases.items():
        summary.append(
            {
                "config": config,
                "condition": condition,
                "runs": len(group),
                "median_cpu_seconds": round(statistics.median(run["cpu_seconds"] for run in group), 2),
                "median_wall_seconds": round(statistics.median(run["wall_seconds"] for run in group), 2),
                "median_load_1min": round(statistics.median(run["load_1min"] for run in group), 2),
            }
        )
    for entry in summary:
        default = next((e for e in summary if e["config"] == "default" and e["condition"] == entry["condition"]), None)
        if default is not None:
            entry["cpu_vs_default"] = round(entry["median_cpu_seconds"] / default["median_cpu_seconds"], 2)
    return summary


if __name__ == "__main__":
    main()
