"""A medium-scale pretraining on this machine: the `pythia-31m` preset on a world ten times `default`, and its oracle.

    python benchmarks/bench_medium_scale.py --work DIR            # writes benchmarks/results/medium_scale-<UTC>.json
    python benchmarks/bench_medium_scale.py --work DIR --update   # the committed benchmarks/results/medium_scale.json

Generates `default` with 900 subjects and 22 relations instead of 400 and 5 (19,800 facts, 2M train sentences) into
`DIR/data`, then pretrains `DIR/model` and the retain oracle `DIR/oracle` (`--exclude-split forget`) side by side (one
process each: run it with OMP_NUM_THREADS=1 on 2 cores) with `trainer_configs/pretrain_pythia31m_medium.yaml` (the CPU
recipe with a cosine decay over 16,000 updates) until 99% of a 1,000-fact sample is memorised. Each is a `behemoth`
command in its own process, so its wall time and peak resident memory (`wait4`) are its own. A stopped pretraining
resumes from its latest checkpoint when the script is run again with the same `--work` (its wall time is then that of
the last session only; the training record has the steps and tokens/s); finished steps are reused. The record holds
updates, tokens/s, wall time, peak memory and the four split accuracies of both models; the weights stay in DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
from results_file import add_output_arguments, output_path, write_record

RECIPE = Path(__file__).parents[1] / "trainer_configs" / "pretrain_pythia31m_medium.yaml"
# Ten times the `default` world's 2,000 facts, grown by relations: past 1,000 subjects (holdout included) subject
# names become two words, a different and much slower task to learn (results/README.md, (1e)).
SUBJECTS, RELATIONS = 900, 22
STEPS_FILE = "medium_scale_steps.json"  # per step: wall seconds and peak RSS of the process that made it


def _behemoth(*argv: str) -> list[str]:
    return [sys.executable, "-m", "behemoth_hf.cli", *argv]


def _run_side_by_side(jobs: dict[str, tuple[list[str], Path]], steps: dict) -> None:
    """Start every job whose `done` file is missing at once (one core each); record each one's wall time and peak
    RSS (`wait4` gives every child its own resource usage)."""
    started = {}
    for name, (command, done) in jobs.items():
        if done.exists() and name in steps:
            print(f"{name}: reusing {done.parent}", flush=True)
            continue
        started[name] = (subprocess.Popen(command), time.perf_counter(), command)
    failed = []
    by_pid = {process.pid: name for name, (process, _, _) in started.items()}
    while by_pid:
        # Whichever child ends first: waiting for them in order would charge a quicker one the slower one's time.
        pid, status, usage = os.wait4(-1, 0)
        name = by_pid.pop(pid)
        _, start, command = started[name]
        if os.waitstatus_to_exitcode(status) != 0:
            failed.append(name)
            continue
        steps[name] = {
            "wall_seconds": round(time.perf_counter() - start, 1),
            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "command": " ".join(command[1:]),
        }
    if failed:
        sys.exit(f"failed: {failed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_arguments(parser, "medium_scale")
    parser.add_argument("--work", type=Path, required=True, help="folder for the world and both models (kept)")
    parser.add_argument("--learning-rate", type=float, help="instead of the recipe's (recorded)")
    args = parser.parse_args()
    path = output_path(parser, args, "medium_scale")
    args.work.mkdir(parents=True, exist_ok=True)
    steps_file = args.work / STEPS_FILE
    steps = json.loads(steps_file.read_text()) if steps_file.exists() else {}
    data, model, oracle = args.work / "data", args.work / "model", args.work / "oracle"

    generate = _behemoth(
        "generate", "--config", "default", "--set", f"num_subjects={SUBJECTS}", "--set", f"num_relations={RELATIONS}",
        "--output", str(data),
    )  # fmt: skip
    _run_side_by_side({"generate": (generate, data / "behemoth.json")}, steps)
    steps_file.write_text(json.dumps(steps, indent=2) + "\n")
    jobs = {}
    for name, folder, extra in (("model", model, []), ("oracle", oracle, ["--exclude-split", "forget"])):
        command = _behemoth("pretrain", "--config", str(RECIPE), "--dataset", str(data), "--output", str(folder))
        if args.learning_rate is not None:
            command += ["--learning_rate", str(args.learning_rate)]
        if folder.exists() and not (folder / "training_record.json").exists():
            command.append("--resume")  # continues from the latest checkpoint of this very run
        jobs[name] = ([*command, *extra], folder / "training_record.json")
    _run_side_by_side(jobs, steps)
    steps_file.write_text(json.dumps(steps, indent=2) + "\n")

    world = json.loads((data / "behemoth.json").read_text())
    record = {
        "machine": f"{platform.machine()} {platform.processor()} cpus={os.cpu_count()}",
        "command": "python benchmarks/bench_medium_scale.py --work DIR --update"
        + (f" --learning-rate {args.learning_rate}" if args.learning_rate is not None else "")
        + f"  (OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS', 'behemoth default')})",
        "world": {
            "config": f"default with num_subjects={SUBJECTS}, num_relations={RELATIONS}",
            "fingerprint": world["fingerprint"],
            "facts": SUBJECTS * RELATIONS,
            "train_sentences": sum(
                pq.ParquetFile(data / name).metadata.num_rows
                for name in world["files"]
                if name.startswith("data/train-")
            ),
        },
        "recipe": str(RECIPE.relative_to(RECIPE.parents[1])),
        "learning_rate": args.learning_rate or "the recipe's",
        "steps": steps,
    }
    for name, folder in (("model", model), ("oracle", oracle)):
        found = json.loads((folder / "training_record.json").read_text())
        record[name] = {
            key: found[key]
            for key in (
                "steps",
                "sentences_seen",
                "tokens_per_second",
                "wall_seconds",
                "accuracy",
                "seed",
                "num_processes",
            )
        }
    record["load_average_1_5_15_min_at_end"] = [round(load, 1) for load in os.getloadavg()]
    print(json.dumps(record, indent=2))
    write_record(path, record, update=args.update)


if __name__ == "__main__":
    main()
