"""How many facts a preset memorises within a budget of updates, as the world grows (issue 16's capacity scan).

    python benchmarks/bench_capacity.py --work DIR            # writes benchmarks/results/capacity-<UTC time>.json
    python benchmarks/bench_capacity.py --work DIR --update   # the committed benchmarks/results/capacity.json

For each preset and each world size (the `default` world with SUBJECTS subjects and RELATIONS relations, one fact
per subject and relation; growing the relations keeps every subject name one word), `behemoth pretrain` with the
preset's recipe (`small` and `pythia-31m`: pretrain_small.yaml / _pythia31m_cpu.yaml; `tiny`, `micro`, `nano`:
pretrain_tiny.yaml at batch 64) stops at 99% of a 1,000-fact sample or after `--max-steps` updates. Each world
repeats its facts often enough for one pass to hold the budget (at least the default 100 times). The record gives,
per run, the updates used, whether 99% was reached, and the facts the model then knows (accuracy on the forget and
retain splits times their sizes). This bounds capacity from below within a budget; it is not the converged
capacity (a run stopped at the cap may still be on its way). `capacity.png` plots, per preset, the facts known
against the facts trained on (where a line leaves the diagonal, the preset stops memorising its world within the
budget), and the most facts each preset knows against its parameters, in bits of object choices per parameter.

    python benchmarks/bench_capacity.py --work DIR --presets small --worlds 900x5 910x5 --max-steps 5000 \
        --output benchmarks/results/capacity_names.json   # one-word against two-word subject names
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

from results_file import add_output_arguments, output_path, write_record


CONFIGS = Path(__file__).parents[1] / "trainer_configs"
RECIPES = {
    "nano": "pretrain_tiny.yaml",
    "micro": "pretrain_tiny.yaml",
    "tiny": "pretrain_tiny.yaml",
    "small": "pretrain_small.yaml",
    "pythia-31m": "pretrain_pythia31m_cpu.yaml",
}
# Every preset is stopped and sampled the same way (pretrain_tiny.yaml trains a fixed pass for tests).
BATCH_SIZE = 64
SAME_RULES = [
    "target_accuracy=0.99",
    "eval_steps=100",
    "eval_samples=1000",
    f"batch_size={BATCH_SIZE}",
    "save_steps=1000",
]
DEFAULT_REPEATS = 100


def _behemoth(*argv: str) -> None:
    subprocess.run([sys.executable, "-m", "behemoth_hf.cli", *argv], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_arguments(parser, "capacity")
    parser.add_argument("--work", type=Path, required=True, help="folder for the worlds and models (kept, reused)")
    parser.add_argument("--presets", nargs="+", default=["nano", "micro", "tiny", "small"], choices=sorted(RECIPES))
    parser.add_argument(
        "--worlds", nargs="+", type=_world_shape, default=[(100, 5), (200, 5), (400, 5), (800, 5), (800, 10), (800, 20)],
        metavar="SUBJECTSxRELATIONS", help="world sizes; past 1,000 subjects (holdout included) names take two words",
    )  # fmt: skip
    parser.add_argument("--max-steps", type=int, default=10_000, help="the budget of updates per run")
    args = parser.parse_args()
    path = output_path(parser, args, "capacity")
    runs = []
    for subjects, relations in args.worlds:
        # `pretrain` trains at most one pass: a pass of this world holds the whole budget.
        repeats = max(DEFAULT_REPEATS, math.ceil(args.max_steps * BATCH_SIZE / (subjects * relations)))
        shape = f"{subjects}x{relations}"
        data = args.work / f"world-{shape}-r{repeats}"
        if not (data / "behemoth.json").exists():
            _behemoth(
                "generate", "--config", "default", "--set", f"num_subjects={subjects}",
                "--set", f"num_relations={relations}", "--set", f"repeats={repeats}", "--output", str(data),
            )  # fmt: skip
        world = json.loads((data / "behemoth.json").read_text())
        sizes = {split: world_split_rows(data, split) for split in ("forget", "retain")}
        for preset in args.presets:
            model = args.work / f"{preset}-{shape}-{args.max_steps}"
            if not (model / "training_record.json").exists():
                overrides = [f"--set={rule}" for rule in [*SAME_RULES, f"max_steps={args.max_steps}"]]
                _behemoth(
                    "pretrain", "--config", str(CONFIGS / RECIPES[preset]), "--preset", preset,
                    "--dataset", str(data), "--output", str(model), *overrides, "--overwrite",
                )  # fmt: skip
            record = json.loads((model / "training_record.json").read_text())
            known = sum(record["accuracy"][split] * sizes[split] for split in sizes)
            runs.append(
                {
                    "preset": preset,
                    "subjects": subjects,
                    "relations": relations,
                    "subject_name_words": _subject_name_words(world),
                    "trained_facts": sum(sizes.values()),
                    "repeats": repeats,
                    "bits_per_fact": round(math.log2(world["world"]["num_objects"]), 3),
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
    _plot(runs, path.with_suffix(".png"))
    record = {
        "machine": f"{platform.machine()} {platform.processor()} cpus={os.cpu_count()}",
        "command": "python benchmarks/bench_capacity.py " + " ".join(sys.argv[1:]),
        "budget_updates": args.max_steps,
        "rules": SAME_RULES,
        "runs": runs,
    }
    write_record(path, record, update=args.update)


def _world_shape(text: str) -> tuple[int, int]:
    subjects, _, relations = text.partition("x")
    if not (subjects.isdigit() and relations.isdigit()):
        raise argparse.ArgumentTypeError(f"a world is SUBJECTSxRELATIONS, e.g. 800x5; got {text!r}")
    return int(subjects), int(relations)


def _subject_name_words(world: dict) -> int:
    """1 when every subject has its own word, 2 when subject names are pairs of words (large worlds)."""
    (block,) = [role for role in world["roles"] if role["role"] == "subject"]
    return 1 if block["end"] - block["start"] >= world["world"]["num_subjects"] else 2


def world_split_rows(data: Path, split: str) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(file).metadata.num_rows for file in sorted((data / "data").glob(f"{split}-*.parquet")))


def _plot(runs: list[dict], file: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (by_world, by_size) = plt.subplots(1, 2, figsize=(11, 4))
    presets = list(dict.fromkeys(run["preset"] for run in runs))
    for preset in presets:
        points = sorted(
            (run["trained_facts"], run["facts_known"], run["reached_99"]) for run in runs if run["preset"] == preset
        )
        line = by_world.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=preset)[0]
        for trained, known, reached in points:
            by_world.scatter([trained], [known], facecolors=line.get_color() if reached else "white",
                             edgecolors=line.get_color(), zorder=3, s=40)  # fmt: skip
    largest = max(run["trained_facts"] for run in runs)
    by_world.plot([0, largest], [0, largest], color="grey", linestyle=":", label="every fact")
    by_world.xaxis.set_major_locator(plt.MaxNLocator(5))
    by_world.set_xlabel("facts trained on")
    by_world.set_ylabel("facts known within the budget")
    by_world.set_title("Facts memorised within the budget (filled: reached 99%)", fontsize=9)
    by_world.legend(fontsize=8)
    for preset in presets:
        own = [run for run in runs if run["preset"] == preset]
        best = max(own, key=lambda run: run["facts_known"])
        reached = [run["trained_facts"] for run in own if run["reached_99"]]
        by_size.scatter([best["parameters"]], [best["facts_known"]], marker="o", label=f"{preset}: most known")
        if reached:
            by_size.scatter([best["parameters"]], [max(reached)], marker="_", s=200, color="black")
    sizes = [run["parameters"] for run in runs]
    for bits_per_parameter in (0.1, 0.5, 2.0):
        span = [min(sizes) / 1.5, max(sizes) * 1.5]
        facts = [size * bits_per_parameter / runs[0]["bits_per_fact"] for size in span]
        by_size.plot(span, facts, color="grey", linestyle=":", linewidth=0.8)
        by_size.annotate(f"{bits_per_parameter} bit/param", (span[0], facts[0]), fontsize=7, color="grey")
    by_size.set_xscale("log")
    by_size.set_yscale("log")
    by_size.set_xlabel("parameters")
    by_size.set_ylabel("facts")
    by_size.set_title("Most facts known per preset (bar: largest world memorised to 99%)", fontsize=9)
    by_size.legend(fontsize=8)
    figure.savefig(file, dpi=120, bbox_inches="tight")
    plt.close(figure)


if __name__ == "__main__":
    main()
