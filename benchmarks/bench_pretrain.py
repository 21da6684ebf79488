"""Time-to-accuracy of pretraining on 2 CPU cores: the `default` world, `small` preset, both losses.

    python benchmarks/bench_pretrain.py                    # writes benchmarks/results/pretrain-<UTC time>.json
    python benchmarks/bench_pretrain.py --update           # merges into the committed benchmarks/results/pretrain.json
    python benchmarks/bench_pretrain.py --oracle --update  # only the retain oracle (trainer_configs/oracle_small.yaml)

Each run is `behemoth pretrain --config trainer_configs/pretrain_small.yaml` (answer-only loss) or the
same with `--set loss=all`, stopped at 99% exact-match accuracy on a 1,000-fact sample of the trained
facts, then measured on every split. Runs are sequential so they do not compete for the cores.
Wall time includes the periodic evaluations; tokens/s counts non-padding training tokens.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
from pathlib import Path

import torch

from behemoth_hf.arguments import parse_dataclasses
from behemoth_hf.config import make_config
from behemoth_hf.generate import generate_dataset
from behemoth_hf.pretrain import PretrainArguments, pretrain
from results_file import add_output_arguments, output_path, write_record


CONFIGS = Path(__file__).parents[1] / "trainer_configs"
YAML = str(CONFIGS / "pretrain_small.yaml")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--losses", nargs="+", default=["answer", "all"])
    parser.add_argument("--oracle", action="store_true", help="only run the oracle (merged with --update)")
    add_output_arguments(parser, "pretrain")
    args = parser.parse_args()
    path = output_path(parser, args, "pretrain")
    machine = f"{platform.machine()} {platform.processor()} torch threads={torch.get_num_threads()}"
    if args.oracle:
        record = {"machine": machine, "oracle": run_oracle()}
    else:
        record = {
            "machine": machine,
            "command": "python benchmarks/bench_pretrain.py",
            "world": "default (400 subjects x 5 relations x 20 objects, 100 repeats)",
            "preset": "small (GPT-NeoX, 2 layers, width 256, 4 heads)",
            "target": "99% exact-match on a 1,000-fact sample of trained facts, in under 5 minutes",
            "results": run_recipes(args.losses, args.seeds),
        }
    write_record(path, record, update=args.update, identity={"results": ("loss", "seed")})


def run_recipes(losses: list[str], seeds: list[int]) -> list[dict]:
    """Pretrain with each loss and seed on a fresh `default` world; one result per run."""
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        dataset = generate_dataset(make_config("default"), Path(scratch) / "default", progress=False)
        for loss in losses:
            for seed in seeds:
                argv = [
                    "--config",
                    YAML,
                    "--dataset",
                    str(dataset),
                    "--output",
                    f"{scratch}/{loss}-{seed}",
                    "--set",
                    f"loss={loss}",
                    "--set",
                    f"seed={seed}",
                ]
                (run_args,) = parse_dataclasses((PretrainArguments,), argv, prog="bench")
                record = pretrain(run_args)
                result = {
                    "loss": loss,
                    "seed": seed,
                    "updates_to_99": record["steps"],
                    "seconds_to_99": record["wall_seconds"],
                    "tokens_per_second": record["tokens_per_second"],
                    "accuracy": record["accuracy"],
                    "history": record["history"],
                }
                print(json.dumps(result))
                results.append(result)
    return results


def run_oracle() -> dict:
    """The `small` recipe without the forget facts: retain accuracy should reach 99%, forget stay near chance."""
    with tempfile.TemporaryDirectory() as scratch:
        dataset = generate_dataset(make_config("default"), Path(scratch) / "default", progress=False)
        argv = ["--config", str(CONFIGS / "oracle_small.yaml"), "--dataset", str(dataset), "--output", f"{scratch}/o"]
        (run_args,) = parse_dataclasses((PretrainArguments,), argv, prog="bench")
        record = pretrain(run_args)
    result = {
        "command": "python benchmarks/bench_pretrain.py --oracle",
        "updates": record["steps"],
        "seconds": record["wall_seconds"],
        "accuracy": record["accuracy"],
        "chance": 1 / 20,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
