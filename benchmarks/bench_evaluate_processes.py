"""`behemoth evaluate` on 1 and 2 CPU processes: wall time, speed-up, and that both write the same results.

    python benchmarks/bench_evaluate_processes.py --model DIR [DIR ...] --dataset DIR --oracle DIR
    python benchmarks/bench_evaluate_processes.py ... --update   # the committed benchmarks/results/evaluate_processes.json

Each case is the README's command, `ACCELERATE_USE_CPU=1 torchrun --nproc_per_node N -m behemoth_hf.cli evaluate`,
with one thread per process (`OMP_NUM_THREADS=1`), so N processes use N cores: the speed-up is what splitting the work
between processes buys where one process cannot use the whole machine (whole models go to single processes; the models
left over, fewer than the processes, have their items split). Wall time is the whole command (start-up, model loading,
writing) and the `evaluate` progress bar's seconds per model (the oracle and the models: loading, scoring and metrics,
not start-up or writing); each case runs `--repeats` times and keeps the fastest. The results files of every case must
be byte-identical.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_file import add_output_arguments, output_path, write_record


def _digest(folder: Path) -> str:
    """One hash over every model's results file (the report embeds no timing, but plots are left out)."""
    digest = hashlib.sha256()
    for path in sorted(folder.glob("*/BEHEMOTH_EVAL.json")):
        digest.update(path.relative_to(folder).as_posix().encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def _run(processes: int, argv: list[str], scratch: Path) -> tuple[float, float, str]:
    output = scratch / f"eval-{processes}p-{time.monotonic_ns()}"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}"]
    command += ["-m", "behemoth_hf.cli", "evaluate", *argv, "--output", str(output)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ACCELERATE_USE_CPU": "1"}
    start = time.perf_counter()
    finished = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if finished.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{finished.stderr[-3000:]}")
    # tqdm's last `evaluate` line ends "[00:07<00:00,  2.48s/model]" (or "1.25model/s"): seconds per model.
    rates = re.findall(r"evaluate: 100%[^\n]*?([\d.]+)(s/model|model/s)\]", finished.stderr)
    if not rates:
        sys.exit(f"no `evaluate` progress line in the output of {' '.join(command)}")
    value, unit = rates[-1]
    per_model = float(value) if unit == "s/model" else 1.0 / float(value)
    return wall, per_model, _digest(output)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_arguments(parser, "evaluate_processes")
    parser.add_argument("--model", nargs="+", required=True, help="model folders to evaluate")
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--oracle", help="the retain oracle (a model folder)")
    parser.add_argument("--processes", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    path = output_path(parser, args, "evaluate_processes")
    argv = ["--model", *args.model, "--dataset", args.dataset, *(["--oracle", args.oracle] if args.oracle else [])]
    cases = {}
    with tempfile.TemporaryDirectory() as scratch:
        for processes in args.processes:
            runs = [_run(processes, argv, Path(scratch)) for _ in range(args.repeats)]
            wall, per_model, digest = min(runs, key=lambda run: run[1])
            if len({run[2] for run in runs}) != 1:
                sys.exit(f"{processes} process(es) wrote different results on different runs")
            cases[processes] = {
                "wall_seconds": round(wall, 1),
                "seconds_per_model": round(per_model, 3),
                "results_digest": digest,
            }
            print(processes, cases[processes], flush=True)
    digests = {case["results_digest"] for case in cases.values()}
    first = cases[min(cases)]
    record = {
        "machine": f"{platform.machine()} {platform.processor()} cpus={os.cpu_count()}",
        "command": "python benchmarks/bench_evaluate_processes.py " + " ".join(sys.argv[1:]),
        "models": [Path(model).name for model in args.model],
        "oracle": Path(args.oracle).name if args.oracle else None,
        "dataset": Path(args.dataset).name,
        "threads_per_process": 1,
        "cases": {str(n): case for n, case in cases.items()},
        "speedup_per_model": {
            str(n): round(first["seconds_per_model"] / case["seconds_per_model"], 2) for n, case in cases.items()
        },
        "speedup_wall": {str(n): round(first["wall_seconds"] / case["wall_seconds"], 2) for n, case in cases.items()},
        "same_results": len(digests) == 1,
        "load_average_1_5_15_min": [round(load, 1) for load in os.getloadavg()],
    }
    print(record)
    write_record(path, record, update=args.update)
    if len(digests) != 1:
        sys.exit(f"the process counts wrote different results: {cases}")


if __name__ == "__main__":
    main()
