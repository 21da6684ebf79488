"""Start-up time: importing the package and running the commands that do no real work.

    python benchmarks/bench_startup.py              # median of 20 runs each; writes results/startup-<UTC time>.json
    python benchmarks/bench_startup.py --update     # merges into the committed benchmarks/results/startup.json

Each figure is the wall time of a whole fresh process, from exec to exit (`python -c pass` is the floor every
Python command pays), the median of `--runs` runs, with the load average before the first run: the machine is
shared, and a busy one stretches every figure.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from results_file import add_output_arguments, output_path, write_record


def behemoth() -> list[str]:
    """The `behemoth` console script of this environment (what a user runs), else `python -m behemoth_hf.cli`."""
    script = Path(sys.executable).with_name("behemoth")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "behemoth_hf.cli"]


COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import behemoth_hf": [sys.executable, "-c", "import behemoth_hf"],
    "import behemoth_hf.config": [sys.executable, "-c", "import behemoth_hf.config"],
    "behemoth --help": [*behemoth(), "--help"],
    "behemoth configs": [*behemoth(), "configs"],
    "behemoth generate --help": [*behemoth(), "generate", "--help"],
}


def seconds(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20, help="runs per command; the median is recorded (default 20)")
    add_output_arguments(parser, "startup")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error(f"--runs must be >= 1, got {args.runs}")
    path = output_path(parser, args, "startup")
    results = []
    for name, command in COMMANDS.items():
        load = os.getloadavg()[0]
        times = sorted(seconds(command) for _ in range(args.runs))
        result = {
            "command": name,
            "median_seconds": round(statistics.median(times), 3),
            "min_seconds": round(times[0], 3),
            "max_seconds": round(times[-1], 3),
            "load_average": round(load, 2),
        }
        print(result)
        results.append(result)
    record = {
        "machine": f"{platform.machine()} {platform.processor()} cores={os.cpu_count()}",
        "python": platform.python_version(),
        "command": "python " + " ".join(["benchmarks/bench_startup.py", *sys.argv[1:]]),
        "runs": args.runs,
        "results": results,
    }
    write_record(path, record, update=args.update, identity={"results": ("command",)})


if __name__ == "__main__":
    main()
