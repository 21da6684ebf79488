"""Evaluation on the `default` world: scoring speed, and the headline metrics of a pretrained model and its oracle.

    python benchmarks/bench_evaluate.py            # writes benchmarks/results/evaluate-<UTC time>.json
    python benchmarks/bench_evaluate.py --update   # merges into the committed benchmarks/results/evaluate.json
    python benchmarks/bench_evaluate.py --pretrained DIR --oracle DIR   # models already made with the recipe

Pretrains the `small` model and its retain oracle with the README's recipe (unless given), then runs
`behemoth evaluate` on both. Two speeds, each the best of several timed runs after a warm-up run, in this process's
threads:
- `evaluate_facts_per_second`: the items one model's evaluation scores (`ModelEvaluator.evaluation_items`:
  17,000 (prompt, answer) items on the `default` world, repeats included, as the metrics read them) divided by
  the wall time of the whole `ModelEvaluator.evaluate` of the pretrained model (scoring, ROUGE's generation,
  every metric; model loading and writing excluded), best of 3;
- `facts_scored_per_second`: `score_answers` on the 2,000 trained facts (forget + retain), one call, best of 10.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from behemoth_hf.arguments import parse_dataclasses
from behemoth_hf.config import make_config
from behemoth_hf.data import open_dataset
from behemoth_hf.evaluation import EvaluationArguments, ModelEvaluator, run_evaluation
from behemoth_hf.generate import generate_dataset
from behemoth_hf.pretrain import PretrainArguments, pretrain
from behemoth_hf.scoring import score_answers
from results_file import add_output_arguments, output_path, write_record


CONFIGS = Path(__file__).parents[1] / "trainer_configs"
HEADLINE = (
    "forget_accuracy",
    "retain_accuracy",
    "paraphrase_accuracy",
    "holdout_accuracy",
    "forget_truth_ratio",
    "forget_quality",
    "model_utility",
    "mia_loss",
    "mia_min_k",
    "privleak",
)


def _best_seconds(run, repeats: int = 3) -> float:
    """Fastest of `repeats` timed runs after a warm-up run (imports, first allocations)."""
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_arguments(parser, "evaluate")
    parser.add_argument("--pretrained", help="the pretrained `small` model, if already made with the recipe")
    parser.add_argument("--oracle", help="its retain oracle, if already made with the recipe")
    args = parser.parse_args()
    if (args.pretrained is None) != (args.oracle is None):
        parser.error("give both --pretrained and --oracle, or neither")
    path = output_path(parser, args, "evaluate")
    with tempfile.TemporaryDirectory() as scratch:
        dataset = generate_dataset(make_config("default"), Path(scratch) / "default", progress=False)
        models = {"pretrained": args.pretrained, "oracle": args.oracle} if args.pretrained else {}
        for name, config in (("pretrained", "pretrain_small.yaml"), ("oracle", "oracle_small.yaml")):
            if name in models:
                continue
            argv = [
                "--config",
                str(CONFIGS / config),
                "--dataset",
                str(dataset),
                "--output",
                f"{scratch}/{name}-small",
            ]
            (run_args,) = parse_dataclasses((PretrainArguments,), argv, prog="bench")
            pretrain(run_args)
            models[name] = run_args.output_dir

        data = open_dataset(str(dataset))
        model = AutoModelForCausalLM.from_pretrained(models["pretrained"])
        prompts = list(data.fact_splits["forget"]["prompt"]) + list(data.fact_splits["retain"]["prompt"])
        answers = list(data.fact_splits["forget"]["answer"]) + list(data.fact_splits["retain"]["answer"])
        # One call takes a fifth of a second: best of 10, so a moment of contention on a shared machine is not the
        # figure.
        facts_per_second = len(prompts) / _best_seconds(
            lambda: score_answers(model, data.tokenizer, prompts, answers), repeats=10
        )
        items = len(ModelEvaluator(model, data, 256, 0.4).evaluation_items()[0])
        # A fresh evaluator each run: it keeps the scores it computed.
        evaluate_per_second = items / _best_seconds(lambda: ModelEvaluator(model, data, 256, 0.4).evaluate(None))

        start = time.perf_counter()
        results = run_evaluation(
            EvaluationArguments(
                model=[models["pretrained"]],
                dataset=str(dataset),
                oracle=models["oracle"],
                output_dir=f"{scratch}/eval",
            )
        )
        evaluate_seconds = time.perf_counter() - start
    record = {
        "machine": f"{platform.machine()} {platform.processor()} torch threads={torch.get_num_threads()}",
        "command": "python benchmarks/bench_evaluate.py --update"
        + (" --pretrained DIR --oracle DIR (made with the recipe)" if args.pretrained else ""),
        "model": "small preset, trainer_configs/pretrain_small.yaml and oracle_small.yaml, default world",
        "evaluate_facts_per_second": round(evaluate_per_second),
        "evaluate_items_per_model": items,
        "facts_scored_per_second": round(facts_per_second),
        "load_average_1_5_15_min": [round(load, 1) for load in os.getloadavg()],
        "evaluate_seconds_for_two_models": round(evaluate_seconds, 1),
        "metrics": {name: {key: results[name][key]["agg_value"] for key in HEADLINE} for name in results},
    }
    print(json.dumps(record, indent=2))
    write_record(path, record, update=args.update)


if __name__ == "__main__":
    main()
