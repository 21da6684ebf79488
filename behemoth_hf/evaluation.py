"""Evaluate models on a Behemoth world: OpenUnlearning-shaped results plus what only a synthetic world gives.

Per model, every number comes from teacher-forced scoring of answer + `<eos>` (`scoring.score_answers`, one
forward pass per batch), greedy generation until `<eos>` for ROUGE (`scoring.generate_answers`), and the plain
metric functions of `behemoth_hf.metrics`, on the same sequences OpenUnlearning scores on the export, so the
metrics it reports (same names) equal ours on the same items; `ou_model_utility` is its model utility over the
export's sets, `model_utility` ours. Results are written as
`<output>/<model>/BEHEMOTH_EVAL.json` (`{metric: {agg_value, value_by_index}}`, indexed by `fact_id`,
with OpenUnlearning's key names where a metric exists there, so an oracle's file works as OpenUnlearning's
`retain_logs_path`) and `BEHEMOTH_SUMMARY.json`; `report.py` turns them into markdown and plots.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from behemoth_hf import metrics
from behemoth_hf.data import BehemothData, load_model, open_dataset
from behemoth_hf.export import openunlearning_utility_sets
from behemoth_hf.probes import probe_metric_names, run_probes
from behemoth_hf.scoring import AnswerScores, generate_answers, score_answers
from behemoth_hf.staging import check_output, staged_output


logger = logging.getLogger(__name__)

RESULTS_NAME = "BEHEMOTH"
SUMMARY_FILE = "summary.json"  # written last: the record of a finished evaluation folder
ACCURACY_SPLITS = ("forget", "retain", "dependent", "paraphrase", "holdout")
# OpenUnlearning's TOFU model utility terms, computed on the export's sets (`ou_` + OU's names): the retain sample
# and the two general-knowledge sets (`export.openunlearning_utility_sets`), not our full retain split.
OU_UTILITY_SETS = {"retain": "retain_perturbed", "ra": "real_authors_perturbed", "wf": "world_facts_perturbed"}
OU_UTILITY_METRICS = tuple(f"ou_{name}" for name in metrics.TOFU_MODEL_UTILITY_METRICS)
# Every aggregate metric `ModelEvaluator` can write (those needing a split, an oracle or a base model may be absent).
METRIC_NAMES = (
    *(f"{split}_accuracy" for split in ACCURACY_SPLITS),
    "forget_question_accuracy",
    "forget_Q_A_Prob",
    "retain_Q_A_Prob",
    "forget_Q_A_ROUGE",
    "forget_truth_ratio",
    "retain_truth_ratio",
    "forget_quality",
    "model_utility",
    "extraction_strength",
    *OU_UTILITY_METRICS,
    "ou_model_utility",
    "mia_loss",
    "mia_min_k",
    "privleak",
    "edit_reliability",
    "edit_generalization",
    "edit_locality",
    "edit_portability",
    "propagation_kept",
    "propagation_followed",
    "propagation_broken",
    "propagation_ambiguous",
    *probe_metric_names(),
)
# What an edit is judged on: reported only for models made by `behemoth edit` (for others they read as noise).
EDIT_METRICS = ("edit_reliability", "edit_generalization", "edit_locality", "edit_portability")


@dataclass
class EvaluationArguments:
    """Arguments of `behemoth evaluate`.

    Args:
        model (`list[str]`):
            One or more model folders to evaluate (each gets its own results folder).
        dataset (`str`):
            Their dataset: a `behemoth generate` folder or a named config.
        output_dir (`str`):
            Where results, the report and plots go.
        oracle (`str`, *optional*):
            The retain oracle: a model folder (evaluated too) or its `BEHEMOTH_EVAL.json`. Needed for forget
            quality and for privacy leakage against the oracle.
        base (`str`, *optional*):
            The model before unlearning/editing: needed for EasyEdit locality.
        batch_size (`int`, defaults to 256):
            Sequences per forward pass.
        mia_k (`float`, defaults to 0.4):
            Fraction of lowest token log-probs averaged by the min-k% attack (OpenUnlearning's TOFU value).
        probes (`bool`, defaults to `False`):
            Also ask the forget, dependent and (a sample of) retain facts through every template, greedy and
            multiple-choice (`behemoth_hf.probes`); about 20 s more per model on the `default` world.
    """

    model: list[str] = field(metadata={"help": "model folder(s) to evaluate"})
    dataset: str = field(metadata={"help": "their dataset: folder or named config"})
    output_dir: str = field(metadata={"help": "results, report and plots", "aliases": ["--output"]})
    oracle: str | None = field(default=None, metadata={"help": "retain oracle: model folder or BEHEMOTH_EVAL.json"})
    base: str | None = field(default=None, metadata={"help": "model before the edit (for locality)"})
    batch_size: int = field(default=256, metadata={"help": "sequences per forward pass"})
    mia_k: float = field(default=0.4, metadata={"help": "share of lowest token log-probs averaged by min-k%%"})
    probes: bool = field(default=False, metadata={"help": "probe facts through every template (format attack)"})
    overwrite: bool = field(default=False, metadata={"help": "replace a finished output_dir of `behemoth evaluate`"})

    def __post_init__(self):
        if isinstance(self.model, str):
            self.model = [self.model]
        if not self.model:
            raise ValueError("`model` needs at least one model folder")
        for path in [*self.model, *(p for p in (self.base,) if p)]:
            if not (Path(path) / "config.json").is_file():
                raise FileNotFoundError(f"`model`/`base` {path} is not a saved model folder (no config.json)")
        if self.oracle is not None and not Path(self.oracle).exists():
            raise FileNotFoundError(f"`oracle` {self.oracle} does not exist")
        if self.batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, got {self.batch_size}")
        if not 0 < self.mia_k <= 1:
            raise ValueError(f"`mia_k` must be in (0, 1], got {self.mia_k}")


def _fact_ids(rows) -> list[int]:
    return list(rows["fact_id"])


class ModelEvaluator:
    """Scores one model on the world's fact splits and turns the scores into metric results."""

    def __init__(self, model, data: BehemothData, batch_size: int, mia_k: float, probes: bool = False):
        self.model, self.data, self.batch_size, self.mia_k, self.probes = model, data, batch_size, mia_k, probes
        self.tokenizer = data.tokenizer

    def score(self, prompts, answers) -> AnswerScores:
        return score_answers(self.model, self.tokenizer, prompts, answers, batch_size=self.batch_size)

    def perturbed_mean_nll(self, prompts, perturbed_answers) -> np.ndarray:
        """(items, options) mean NLL of each perturbed answer after the item's prompt."""
        options = np.array(list(perturbed_answers))
        prompts = np.repeat(np.array(list(prompts)), options.shape[1])
        return self.score(list(prompts), list(options.reshape(-1))).mean_nll.reshape(options.shape)

    def rouge(self, prompts, answers) -> dict[str, np.ndarray]:
        """OU's ROUGE of the greedy answers, generated until `<eos>` or OU's 200 tokens."""
        generated = generate_answers(self.model, self.tokenizer, list(prompts), batch_size=self.batch_size)
        return metrics.rouge_scores(generated, list(answers))

    def retain_predictions(self) -> list[np.ndarray]:
        """Argmax tokens at the retain answers' positions: what EasyEdit locality compares before/after."""
        retain = self.data.fact_splits["retain"]
        return self.score(retain["prompt"], retain["answer"]).predicted_ids

    def evaluate(self, base_predictions: list[np.ndarray] | None) -> dict[str, Any]:
        """Every metric that needs only this model (and the base model's predictions, for locality)."""
        splits = self.data.fact_splits
        results: dict[str, Any] = {}
        scores: dict[str, AnswerScores] = {}
        for split in ACCURACY_SPLITS:
            if split in splits:
                rows = splits[split]
                scores[split] = self.score(rows["prompt"], rows["answer"])
                results[f"{split}_accuracy"] = metrics.metric_result(
                    metrics.fact_accuracy(scores[split].correct),
                    scores[split].correct.astype(float),
                    indices=_fact_ids(rows),
                )
        forget, retain = splits["forget"], splits["retain"]
        question = self.score(forget["question"], forget["answer"])
        results["forget_question_accuracy"] = metrics.metric_result(
            metrics.fact_accuracy(question.correct), question.correct.astype(float), indices=_fact_ids(forget)
        )
        for name, rows in (("forget", forget), ("retain", retain)):
            probability = metrics.answer_probability(scores[name].mean_nll)
            results[f"{name}_Q_A_Prob"] = metrics.metric_result(
                float(probability.mean()),
                {"prob": probability, "avg_loss": scores[name].mean_nll},
                indices=_fact_ids(rows),
            )
            # Correct answer: the paraphrased answer after the prompt, as TOFU does. In a Behemoth world it is
            # the object itself, already scored for accuracy.
            correct = scores[name].mean_nll
            if list(rows["paraphrased_answer"]) != list(rows["answer"]):
                correct = self.score(rows["prompt"], rows["paraphrased_answer"]).mean_nll
            ratios = metrics.truth_ratio(correct, self.perturbed_mean_nll(rows["prompt"], rows["perturbed_answer"]))
            aggregator = (
                metrics.FORGET_TRUTH_RATIO_AGGREGATOR if name == "forget" else metrics.RETAIN_TRUTH_RATIO_AGGREGATOR
            )
            results[f"{name}_truth_ratio"] = metrics.metric_result(
                metrics.aggregate_truth_ratio(ratios, aggregator), ratios, indices=_fact_ids(rows)
            )
        results["model_utility"] = metrics.metric_result(
            metrics.model_utility(
                {
                    "retain_Q_A_Prob": results["retain_Q_A_Prob"]["agg_value"],
                    "retain_truth_ratio": results["retain_truth_ratio"]["agg_value"],
                    "retain_accuracy": results["retain_accuracy"]["agg_value"],
                }
            )
        )
        rouge = self.rouge(forget["prompt"], forget["answer"])
        results["forget_Q_A_ROUGE"] = metrics.metric_result(
            float(rouge["rougeL_recall"].mean()), rouge, indices=_fact_ids(forget)
        )
        strength = metrics.extraction_strength(scores["forget"].predicted_ids, scores["forget"].target_ids)
        results["extraction_strength"] = metrics.metric_result(
            float(strength.mean()), strength, indices=_fact_ids(forget)
        )
        self._openunlearning_utility(results)
        self._membership_inference(results, scores)
        self._editing(results, scores, base_predictions)
        self._dependent_propagation(results)
        if self.probes:
            for name, (correct, fact_ids) in run_probes(self.model, self.data, self.batch_size).items():
                results[name] = metrics.metric_result(
                    metrics.fact_accuracy(correct), correct.astype(float), indices=fact_ids
                )
        return results

    def _openunlearning_utility(self, results: dict) -> None:
        """OU's 9-term TOFU model utility over the export's sets, exactly as OU computes it there: Prob (retain)
        or Prob among the options (real authors, world facts), ROUGE-L recall, and truth ratio (`true_better`;
        correct answer: the paraphrased one on retain, the answer itself on the general-knowledge sets)."""
        sets = openunlearning_utility_sets(self.data.fact_splits)
        terms = {}
        for prefix, name in OU_UTILITY_SETS.items():
            rows = sets[name].to_pydict()
            answer = self.score(rows["question"], rows["answer"]).mean_nll
            perturbed = self.perturbed_mean_nll(rows["question"], rows["perturbed_answer"])
            if prefix == "retain":
                terms["retain_Q_A_Prob"] = metrics.answer_probability(answer).mean()
                paraphrased = self.score(rows["question"], rows["paraphrased_answer"]).mean_nll
                ratios = metrics.truth_ratio(paraphrased, perturbed)
            else:
                normalised = metrics.normalized_answer_probability(answer, perturbed)
                terms[f"{prefix}_Q_A_Prob_normalised"] = normalised.mean()
                ratios = metrics.truth_ratio(answer, perturbed)
            terms[f"{prefix}_Q_A_ROUGE"] = self.rouge(rows["question"], rows["answer"])["rougeL_recall"].mean()
            aggregator = metrics.RETAIN_TRUTH_RATIO_AGGREGATOR
            terms[f"{prefix}_Truth_Ratio"] = metrics.aggregate_truth_ratio(ratios, aggregator)
        for name in metrics.TOFU_MODEL_UTILITY_METRICS:
            results[f"ou_{name}"] = metrics.metric_result(float(terms[name]))
        results["ou_model_utility"] = metrics.metric_result(metrics.model_utility(terms))

    def _membership_inference(self, results: dict, scores: dict[str, AnswerScores]) -> None:
        if "holdout" not in scores:
            return
        forget, holdout = scores["forget"], scores["holdout"]
        indices = _fact_ids(self.data.fact_splits["forget"]) + _fact_ids(self.data.fact_splits["holdout"])
        for name, forget_scores, holdout_scores in (
            ("mia_loss", metrics.loss_scores(forget.mean_nll), metrics.loss_scores(holdout.mean_nll)),
            (
                "mia_min_k",
                metrics.min_k_scores(forget.token_logprobs, k=self.mia_k),
                metrics.min_k_scores(holdout.token_logprobs, k=self.mia_k),
            ),
        ):
            results[name] = metrics.metric_result(
                metrics.mia_auc(forget_scores, holdout_scores),
                np.concatenate([forget_scores, holdout_scores]),
                indices=indices,
            )

    def _editing(self, results: dict, scores: dict[str, AnswerScores], base_predictions: list | None) -> None:
        forget = self.data.fact_splits["forget"]
        indices = _fact_ids(forget)
        for name, prompts in (
            ("edit_reliability", forget["prompt"]),
            ("edit_generalization", forget["paraphrased_question"]),
        ):
            new = self.score(prompts, forget["target_new"])
            values = metrics.token_accuracy(new.predicted_ids, new.target_ids)
            results[name] = metrics.metric_result(float(values.mean()), values, indices=indices)
        if base_predictions is not None:
            values = metrics.locality(base_predictions, scores["retain"].predicted_ids)
            results["edit_locality"] = metrics.metric_result(
                float(values.mean()), values, indices=_fact_ids(self.data.fact_splits["retain"])
            )

    def _dependent_propagation(self, results: dict) -> None:
        """Portability and propagation of the dependent facts. A fact has a propagated answer when its base
        fact's edit implies one (every nested inherited fact; a correlated fact only when its pair matched):
        portability is measured on those, and a fact without one can only keep its answer or break."""
        if "dependent" not in self.data.fact_splits:
            return
        dependent = self.data.fact_splits["dependent"]
        has_target = np.array([bool(answer) for answer in dependent["propagated_answer"]])
        propagated_correct = np.zeros(len(dependent), bool)
        with_target = dependent.select(np.flatnonzero(has_target))
        if len(with_target):
            followed = self.score(with_target["prompt"], with_target["propagated_answer"])
            propagated_correct[has_target] = followed.correct
            values = metrics.token_accuracy(followed.predicted_ids, followed.target_ids)
            results["edit_portability"] = metrics.metric_result(
                float(values.mean()), values, indices=_fact_ids(with_target)
            )
        old_correct = metrics.item_values(results["dependent_accuracy"]).astype(bool)
        outcomes = metrics.classify_propagation_from_correct(old_correct, propagated_correct)
        for outcome, rate in metrics.propagation_rates(outcomes).items():
            results[f"propagation_{outcome}"] = metrics.metric_result(rate)
        results["propagation_outcome"] = metrics.metric_result(
            None, [{"outcome": str(o)} for o in outcomes], indices=_fact_ids(dependent)
        )


def add_reference_metrics(results: dict[str, Any], oracle: dict[str, Any] | None) -> None:
    """Metrics judged against the retain oracle: forget quality (KS p-value of forget truth ratios, None
    without an oracle) and privacy leakage of the min-k% attack (against AUC 0.5 without one)."""
    reference_ratios = metrics.item_values(oracle["forget_truth_ratio"]) if oracle is not None else None
    results["forget_quality"] = metrics.metric_result(
        metrics.forget_quality(metrics.item_values(results["forget_truth_ratio"]), reference_ratios)
    )
    if "mia_min_k" in results:
        reference_auc = oracle["mia_min_k"]["agg_value"] if oracle is not None and "mia_min_k" in oracle else 0.5
        results["privleak"] = metrics.metric_result(metrics.privleak(results["mia_min_k"]["agg_value"], reference_auc))


def is_edit_run(model: str | Path) -> bool:
    """Was the model folder made by `behemoth edit` (its unlearning record says so)?"""
    from behemoth_hf.editors import EDITOR_CHOICES
    from behemoth_hf.unlearn.run import RECORD_FILE

    record = Path(model) / RECORD_FILE
    return record.is_file() and json.loads(record.read_text()).get("method") in ("edit", *EDITOR_CHOICES)


def _evaluator(path: str, data: BehemothData, args: EvaluationArguments) -> ModelEvaluator:
    model, _ = load_model(data, path)
    return ModelEvaluator(model, data, args.batch_size, args.mia_k, args.probes)


def run_evaluation(args: EvaluationArguments) -> dict[str, dict[str, Any]]:
    """Evaluate every model (and the oracle when it is a model folder); write results, report and plots."""
    output = check_output(args.output_dir, SUMMARY_FILE, overwrite=args.overwrite)
    data = open_dataset(args.dataset)
    if "forget" not in data.fact_splits:
        raise ValueError(
            f"`dataset` {data.source} has no forget split (a world with forget_fraction=0): evaluation measures "
            f"forgetting against it; its splits are {', '.join(data.fact_splits)}"
        )
    names = [Path(path).resolve().name for path in args.model]
    oracle_is_model = args.oracle is not None and Path(args.oracle).is_dir()
    if len(set(names)) != len(names) or (args.oracle is not None and "oracle" in names):
        raise ValueError(
            f"`model` folders need distinct names (their results folders; 'oracle' is taken), got {names}"
        )
    base_predictions = _evaluator(args.base, data, args).retain_predictions() if args.base else None

    all_results: dict[str, dict[str, Any]] = {}
    oracle_results = None
    if args.oracle is not None and Path(args.oracle).is_file():
        # Given as its results file: shown like an evaluated oracle in the report and plots, and copied.
        oracle_results = metrics.read_eval_json(args.oracle)
        all_results["oracle"] = oracle_results
    elif oracle_is_model:
        oracle_results = _evaluator(args.oracle, data, args).evaluate(base_predictions)
        add_reference_metrics(oracle_results, oracle_results)  # the oracle against itself: forget quality 1.0
        all_results["oracle"] = oracle_results
    for name, path in tqdm(list(zip(names, args.model)), desc="evaluate", unit="model"):
        results = _evaluator(path, data, args).evaluate(base_predictions)
        add_reference_metrics(results, oracle_results)
        all_results[name] = results
    with staged_output(output, SUMMARY_FILE, overwrite=args.overwrite) as staging:
        _write_evaluation(staging, all_results, data, args, names)
    return all_results


def _write_evaluation(output: Path, all_results: dict[str, dict[str, Any]], data, args, names: list[str]) -> None:
    """Results per model, the report and plots, then `summary.json`, the record of a finished evaluation."""
    from behemoth_hf.report import write_report

    for name, results in all_results.items():
        metrics.write_results(results, output / name, RESULTS_NAME)
    write_report(all_results, data, output, edit_runs={n for n, path in zip(names, args.model) if is_edit_run(path)})
    summaries = {name: metrics.summary(results) for name, results in all_results.items()}
    (output / SUMMARY_FILE).write_text(
        json.dumps(
            {
                "dataset": data.source,
                "dataset_fingerprint": data.fingerprint,
                "models": dict(zip(names, args.model)),
                "oracle": args.oracle,
                "base": args.base,
                "summaries": summaries,
            },
            indent=2,
            default=float,
        )
        + "\n"
    )
