"""Training speed of each unlearning/editing method relative to plain fine-tuning, on 2 CPU cores.

    python benchmarks/bench_unlearn.py            # writes benchmarks/results/unlearn-<UTC time>.json
    python benchmarks/bench_unlearn.py --update   # merges into the committed benchmarks/results/unlearn.json
    python benchmarks/bench_unlearn.py --case npo --case grad_diff --repeats 3   # some cases, fastest of 3 runs

Model: the `small` preset (freshly initialised: speed does not depend on the weights) on the `default`
world; every method trains 60 steps on the same forget batches (32 facts, retain examples paired by
the same seed). "Plain fine-tuning" is `edit` with `alpha=0`: one forward/backward on the forget batch,
which is what every method adds its extra passes to (retain batch, frozen reference model, KL).
`--repeats n` keeps each case's fastest of n runs (on a shared machine the others only measure the load), and
`cpu_seconds` is the process CPU time spent in `Trainer.train`, which the load of other processes barely changes.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from behemoth_hf.data import open_dataset
from behemoth_hf.modeling import build_model
from behemoth_hf.tokenizer import save_tokenizer
from behemoth_hf.unlearn import UnlearningArguments, UnlearningTrainer
from behemoth_hf.unlearn.run import run_unlearning
from results_file import add_output_arguments, output_path, write_record


CASES = {
    "plain fine-tuning (edit, alpha=0)": dict(method="edit", alpha=0.0),
    "gradient_ascent": dict(method="gradient_ascent"),
    "grad_diff": dict(method="grad_diff"),
    "grad_diff, retain_loss=kl": dict(method="grad_diff", retain_loss="kl"),
    "npo": dict(method="npo"),
    "simnpo": dict(method="simnpo"),
    "edit": dict(method="edit"),
    "edit, LoRA rank 4": dict(method="edit", lora_rank=4),
    "edit, MLP of layer 1 only": dict(method="edit", trainable_blocks="mlp", trainable_layers="1"),
}


def _count_cpu_seconds() -> list[float]:
    """Make every `UnlearningTrainer.train` append its process CPU seconds to the returned list."""
    spent: list[float] = []
    train = UnlearningTrainer.train

    def timed_train(self, *args, **kwargs):
        start = time.process_time()
        result = train(self, *args, **kwargs)
        spent.append(time.process_time() - start)
        return result

    UnlearningTrainer.train = timed_train
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument(
        "--case",
        action="append",
        choices=list(CASES)[1:],
        help="measure only this case (repeatable); plain fine-tuning, the yardstick, always runs",
    )
    parser.add_argument("--repeats", type=int, default=1, help="runs per case; the fastest is recorded")
    add_output_arguments(parser, "unlearn")
    args = parser.parse_args()
    path = output_path(parser, args, "unlearn")
    if args.repeats < 1:
        parser.error(f"`--repeats` must be >= 1, got {args.repeats}")
    yardstick = next(iter(CASES))
    cases = {label: case for label, case in CASES.items() if label == yardstick or label in (args.case or CASES)}
    data = open_dataset("default")
    cpu_seconds = _count_cpu_seconds()
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        model_dir = Path(scratch) / "small"
        tokenizer = data.tokenizer
        build_model(
            "small", len(tokenizer), eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, seed=0
        ).save_pretrained(model_dir)
        save_tokenizer(tokenizer, model_dir)
        for label, overrides in cases.items():
            runtimes, cpu_seconds[:] = [], []
            for repeat in range(args.repeats):
                run_args = UnlearningArguments(
                    model=str(model_dir),
                    dataset="default",
                    output_dir=f"{scratch}/{len(results)}-{repeat}",
                    max_steps=args.steps,
                    per_device_train_batch_size=32,
                    logging_steps=args.steps,
                    seed=0,
                    **overrides,
                )
                record = run_unlearning(run_args)
                runtimes += [entry["train_runtime"] for entry in record["log_history"] if "train_runtime" in entry]
            runtime = min(runtimes)
            results.append(
                {
                    "case": label,
                    "steps": record["steps"],
                    "seconds": round(runtime, 2),
                    "steps_per_second": round(record["steps"] / runtime, 2),
                    "cpu_seconds": round(min(cpu_seconds), 2),
                    "trainable_parameters": record["trainable_parameters"],
                }
            )
            print(json.dumps(results[-1]))
    baseline, baseline_cpu = results[0]["steps_per_second"], results[0]["cpu_seconds"]
    for result in results:
        result["relative_to_plain_fine_tuning"] = round(result["steps_per_second"] / baseline, 2)
        result["cpu_relative_to_plain_fine_tuning"] = round(baseline_cpu / result["cpu_seconds"], 2)
    record = {
        "machine": f"{platform.machine()} {platform.processor()} torch threads={torch.get_num_threads()}",
        "command": "python benchmarks/bench_unlearn.py"
        + "".join(f" --case '{label}'" for label in args.case or [])
        + (f" --repeats {args.repeats}" if args.repeats > 1 else ""),
        "model": "small preset (GPT-NeoX, 2 layers, width 256), default world, batch 32 forget (+32 retain)",
        "results": results,
    }
    write_record(path, record, update=args.update, identity={"results": ("case",)})


if __name__ == "__main__":
    main()
