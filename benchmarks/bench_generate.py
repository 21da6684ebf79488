"""Generation speed and peak memory against the original generator, same machine, same run.

    python benchmarks/bench_generate.py --original ~/behemoth          # 1M and 10M sentences, both generators
    python benchmarks/bench_generate.py --original ~/behemoth --runs 3 --update
    python benchmarks/bench_generate.py --paper                        # behemoth_hf alone, also the paper config

`--original` is a checkout of IST-DASLab/behemoth (commit 4bf6d13; it needs only numpy, which this environment
has). Every measurement is a whole fresh process, start-up included: `behemoth generate ... --quiet` (its default
worker count, and once more with `--workers 1`) against `python create_data.py ... --shuffle --output-dir`, on the
same world sizes (holdout off, so both write the same number of training sentences). Peak RSS is that of the
largest process (the parent or its forked worker); the load average before each run is recorded, since the
figures are wall-clock times on a shared machine. With `--runs N` each figure is the median of N runs.

Results go to a new benchmarks/results/generate-<UTC time>.json (or `--output PATH`); `--update` merges them into the
committed benchmarks/results/generate.json, keeping the cases this run did not measure.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_file import add_output_arguments, output_path, write_record


# name: (named config, overrides, also run the original); holdout off so the sentence counts equal the original's.
CASES = {
    "1k_subjects_1M_sentences": ("default", dict(num_subjects=1000, num_relations=10, num_objects=100, repeats=100)),
    "10k_subjects_10M_sentences": (
        "default",
        dict(num_subjects=10000, num_relations=10, num_objects=100, repeats=100),
    ),
    "1k_subjects_repeats_1000_10M_sentences": (
        "default",
        dict(num_subjects=1000, num_relations=10, num_objects=100, repeats=1000),
    ),
}
# The original would need ~40 GB of memory for this one: behemoth_hf alone.
PAPER_CASE = {"paper_300M_sentences": ("paper", {})}
ORIGINAL_FLAGS = {"num_subjects": "-s", "num_relations": "-r", "num_objects": "-o", "repeats": "-n"}


def behemoth_command() -> list[str]:
    """The `behemoth` console script of this environment (what a user runs), else `python -m behemoth_hf.cli`."""
    script = Path(sys.executable).with_name("behemoth")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "behemoth_hf.cli"]


def run_process(command: list[str], cwd: Path | None = None) -> dict:
    """Run `command` to completion: wall seconds, CPU seconds (user + system, of the process and the worker it
    waited for), peak RSS of its largest process, and the load average before it."""
    load = os.getloadavg()[0]
    with tempfile.TemporaryFile() as errors:
        start = time.perf_counter()
        process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=errors)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            errors.seek(0)
            raise RuntimeError(f"{' '.join(command)} failed:\n{errors.read().decode(errors='replace')[-3000:]}")
    # wait4 reports the largest of the process and the children it waited for (Linux: KiB).
    cpu = usage.ru_utime + usage.ru_stime
    return {"seconds": wall, "cpu_seconds": cpu, "peak_rss_mb": usage.ru_maxrss / 1024, "load_average": load}


def folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def run_once(command: list[str], output: Path, cwd: Path | None = None) -> dict:
    """One fresh run into `output`, deleted afterwards (disk never holds two outputs)."""
    result = {**run_process([*command, str(output)], cwd), "output_bytes": folder_bytes(output)}
    shutil.rmtree(output)
    return result


def summary(results: list[dict]) -> dict:
    """Medians over the runs, with every run's seconds and load average."""
    median = {key: statistics.median(result[key] for result in results) for key in results[0]}
    return {
        "seconds": round(median["seconds"], 2),
        "all_seconds": [round(result["seconds"], 2) for result in results],
        "cpu_seconds": round(median["cpu_seconds"], 2),
        "peak_rss_mb": round(median["peak_rss_mb"], 1),
        "load_average": [round(result["load_average"], 2) for result in results],
        "output_bytes": results[-1]["output_bytes"],
    }


def measure_case(name: str, overrides: dict, original: Path | None, runs: int, scratch: Path) -> dict:
    settings = [f"{key}={value}" for key, value in {**overrides, "holdout_fraction": 0.0}.items()]
    ours = [*behemoth_command(), "generate", "--config", name, *(f"--set={s}" for s in settings), "--quiet"]
    commands = {
        "behemoth_hf": ([*ours, "--output"], None),
        "behemoth_hf_1_worker": ([*ours, "--workers=1", "--output"], None),
    }
    if original is not None:
        flags = [item for key, flag in ORIGINAL_FLAGS.items() for item in (flag, str(overrides[key]))]
        commands["original"] = ([sys.executable, "create_data.py", *flags, "--shuffle", "--output-dir"], original)
    # Interleaved (ours, ours on one worker, original, ours, ...): a change in the machine's load hits all alike.
    runs_by_name = {key: [] for key in commands}
    for index in range(runs):
        for key, (command, cwd) in commands.items():
            runs_by_name[key].append(run_once(command, scratch / f"{key}-{index}", cwd))
    sentences = _sentences(name, overrides)
    result = {"config": name, "overrides": overrides, "train_sentences": sentences}
    result.update((key, summary(results)) for key, results in runs_by_name.items())
    result["sentences_per_second"] = round(sentences / result["behemoth_hf"]["seconds"])
    if original is not None:
        result["speedup"] = round(result["original"]["seconds"] / result["behemoth_hf"]["seconds"], 1)
        # CPU time is far less stretched by a busy machine than wall time: the original's is its wall time on an
        # idle core, ours the sum over both processes (an upper bound of the wall time on two idle cores).
        result["cpu_speedup"] = round(result["original"]["cpu_seconds"] / result["behemoth_hf"]["cpu_seconds"], 1)
    return result


def _sentences(name: str, overrides: dict) -> int:
    from behemoth_hf.config import make_config

    return make_config(name, holdout_fraction=0.0, **overrides).train_rows_per_pass * (
        overrides.get("repeats") or make_config(name).repeats
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", type=Path, help="checkout of IST-DASLab/behemoth to run side by side")
    parser.add_argument("--runs", type=int, default=1, help="runs per figure; the median is recorded (default 1)")
    parser.add_argument("--cases", nargs="+", choices=[*CASES, *PAPER_CASE], help="only these cases")
    parser.add_argument("--paper", action="store_true", help="also generate the 300M-sentence paper config")
    add_output_arguments(parser, "generate")
    args = parser.parse_args()
    if args.original is not None and not (args.original / "create_data.py").is_file():
        parser.error(f"--original {args.original}: no create_data.py there (a checkout of IST-DASLab/behemoth)")
    if args.runs < 1:
        parser.error(f"--runs must be >= 1, got {args.runs}")
    path = output_path(parser, args, "generate")
    cases = {**CASES, **(PAPER_CASE if args.paper else {})}
    if args.cases:
        cases = {label: case for label, case in {**CASES, **PAPER_CASE}.items() if label in args.cases}
    command = "python " + " ".join(["benchmarks/bench_generate.py", *sys.argv[1:]])
    results = []
    for label, (config_name, overrides) in cases.items():
        original = args.original.resolve() if args.original is not None and label not in PAPER_CASE else None
        # One scratch dir per case, deleted before the next, so disk never holds two outputs.
        with tempfile.TemporaryDirectory(dir=".") as scratch:
            measured = measure_case(config_name, overrides, original, args.runs, Path(scratch).resolve())
        result = {"case": label, "command": command, "runs": args.runs, **measured}
        print(result)
        results.append(result)
    record = {
        "machine": f"{platform.machine()} {platform.processor()} cores={os.cpu_count()}",
        "python": platform.python_version(),
        "measured": "whole fresh processes, start-up included; seconds, CPU seconds and peak RSS are medians over "
        "`runs` interleaved runs; load_average is the machine's 1-minute load before each run",
        "results": results,
    }
    write_record(path, record, update=args.update, identity={"results": ("case",)})


if __name__ == "__main__":
    main()
