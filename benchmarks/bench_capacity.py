"""How many facts a preset memorises within a budget of updates, as the world grows (issue 16's capacity scan).

    python benchmarks/bench_capacity.py --work DIR            # writes benchmarks/results/capacity-<UTC time>.json
    python benchmarks/bench_capacity.py --work DIR --update   # the committed benchmarks/results/capacity.json

For each preset and each world size (the `default` world with `num_subjects` subjects: 5 facts each, 100 repeats),
`behemoth pretrain` with the preset's recipe (`small` and `pythia-31m`: pretrain_small.yaml / _pythia31m_cpu.yaml;
`tiny`: pretrain_tiny.yaml at batch 64) stops at 99% of a 1,000-fact sample or after `--max-steps` updates. The
record gives, per run, the updates used, whether 99% was reached, and the facts the model then knows (accuracy on
the forget and retain splits times their sizes). This bounds capacity from below within a budget; it is not the
converged capacity (a run stopped at the cap may still be on its way). `capacity.png` plots, per preset (its
parameter count is in the record), the facts known against the facts trained on: where a line leaves the diagonal,
the preset stops memorising its world within the budget.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

from results_file import add_output_arguments, output_path, write_record


CONFIGS = Path(__file__).parents[1] / "trainer_configs"
RECIPES = {"tiny": "pretrain_tiny.yaml", "small": "pretrain_small.yaml", "pythia-31m": "pretrain_pythia31m_cpu.yaml"}
# Every preset is stopped and sampled the same way (pretrain_tiny.yaml trains a fixed pass for tests).
SAME_RULES = ["target_accuracy=0.99", "eval_steps=100", "eval_samples=1000", "batch_size=64"]


def _behemoth(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "behemoth_hf.cli", *argv], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_arguments(parser, "capacity")
    parser.add_argument("--work", type=Path, required=True, help="folder for the worlds and models (kept, reused)")
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"], choices=sorted(RECIPES))
    parser.add_argument("--subjects", nargs="+", type=int, default=[100, 200, 400, 800, 1600])
    parser.add_argument("--max-steps", type=int, default=2500, help="the budget of updates per run")
    args = parser.parse_args()
    path = output_path(parser, args, "capacity")
    runs = []
    for subjects in args.subjects:
        data = args.work / f"world-{subjects}"
        if not (data / "behemoth.json").exists():
            _behemoth("generate", "--config", "default", "--set", f"num_subjects={subjects}", "--output", str(data))
        for preset in args.presets:
            model = args.work / f"{preset}-{subjects}-{args.max_steps}"
            if not (model / "training_record.json").exists():
                overrides = [f"--set={rule}" for rule in [*SAME_RULES, f"max_steps={args.max_steps}"]]
                _behemoth(
                    "pretrain", "--config", str(CONFIGS / RECIPES[preset]), "--preset", preset,
                    "--dataset", str(data), "--output", str(model), *overrides, "--overwrite",
                )  # fmt: skip
            record = json.loads((model / "training_record.json").read_text())
            world = json.loads((data / "behemoth.json").read_text())
            sizes = {split: world_split_rows(data, split) for split in ("forget", "retain")}
            known = sum(record["accuracy"][split] * sizes[split] for split in sizes)
            runs.append(
                {
                    "preset": preset,
                    "subjects": subjects,
                    "trained_facts": sum(sizes.values()),
                    "parameters": record["num_parameters"],
                    "updates": record["steps"],
                    "reached_99": bool(record["stopped_early"]),
                    "accuracy": record["accuracy"],
                    "facts_known": round(known),
                    "wall_seconds": record["wall_seconds"],
                    "fingerprint": world["fingerprint"],
                }
            )
            print(json.dumps(runs[-1]), flush=True)
    _plot(runs, path.with_suffix(".png") if not args.update else path.parent / "capacity.png")
    record = {
        "machine": f"{platform.machine()} {platform.processor()} cpus={os.cpu_count()}",
        "command": "python benchmarks/bench_capacity.py " + " ".join(sys.argv[1:]),
        "budget_updates": args.max_steps,
        "rules": SAME_RULES,
        "runs": runs,
    }
    write_record(path, record, update=args.update)


def world_split_rows(data: Path, split: str) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(file).metadata.num_rows for file in sorted((data / "data").glob(f"{split}-*.parquet")))


def _plot(runs: list[dict], file: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for preset in dict.fromkeys(run["preset"] for run in runs):
        points = sorted(
            (run["trained_facts"], run["facts_known"], run["reached_99"]) for run in runs if run["preset"] == preset
        )
        line = axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=preset)[0]
        for trained, known, reached in points:
            axis.scatter([trained], [known], facecolors=line.get_color() if reached else "white",
                         edgecolors=line.get_color(), zorder=3, s=40)  # fmt: skip
    largest = max(run["trained_facts"] for run in runs)
    axis.plot([0, largest], [0, largest], color="grey", linestyle=":", label="every fact")
    axis.set_xlabel("facts trained on")
    axis.set_ylabel("facts known within the budget")
    axis.set_title("Facts memorised within the update budget (filled: reached 99%)", fontsize=9)
    axis.legend(fontsize=8)
    figure.savefig(file, dpi=120, bbox_inches="tight")
    plt.close(figure)


if __name__ == "__main__":
    main()
