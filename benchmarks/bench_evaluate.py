"""Evaluation on the `default` world: scoring speed, and the headline metrics of a pretrained model and its oracle.

    python benchmarks/bench_evaluate.py            # writes benchmarks/results/evaluate-<UTC time>.json
    python benchmarks/bench_evaluate.py --update   # merges into the committed benchmarks/results/evaluate.json

Pretrains the `small` model and its retain oracle with the README's recipe, then runs `behemoth evaluate`
on both. Scoring speed is facts per second of `score_answers` (one teacher-forced pass per batch of 256)
on the 2,000 trained facts, after one warm-up pass.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM

from behemoth_hf.arguments import parse_dataclasses
from behemoth_hf.config import make_config
from behemoth_hf.data import open_dataset
from behemoth_hf.evaluation import EvaluationArguments, run_evaluation
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_output_arguments(parser, "evaluate")
    args = parser.parse_args()
    path = output_path(parser, args, "evaluate")
    with tempfile.TemporaryDirectory() as scratch:
        dataset = generate_dataset(make_config("default"), Path(scratch) / "default", progress=False)
        models = {}
        for name, config in (("pretrained", "pretrain_small.yaml"), ("oracle", "oracle_small.yaml")):
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
        score_answers(model, data.tokenizer, prompts, answers)
        start = time.perf_counter()
        score_answers(model, data.tokenizer, prompts, answers)
        facts_per_second = len(prompts) / (time.perf_counter() - start)

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
        "command": "python benchmarks/bench_evaluate.py",
        "model": "small preset, trainer_configs/pretrain_small.yaml and oracle_small.yaml, default world",
        "facts_scored_per_second": round(facts_per_second),
        "evaluate_seconds_for_two_models": round(evaluate_seconds, 1),
        "metrics": {name: {key: results[name][key]["agg_value"] for key in HEADLINE} for name in results},
    }
    print(json.dumps(record, indent=2))
    write_record(path, record, update=args.update)


if __name__ == "__main__":
    main()
