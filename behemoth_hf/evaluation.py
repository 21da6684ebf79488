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
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from behemoth_hf import metrics
from behemoth_hf.data import BehemothData, load_model, open_dataset
from behemoth_hf.export import openunlearning_utility_sets
from behemoth_hf.probes import probe_metric_names, run_probes
from behemoth_hf.scoring import AnswerScores, greedy_answers, score_answers
from behemoth_hf.staging import check_output, staged_output

if TYPE_CHECKING:
    from accelerate import PartialState

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


def _options(prompts, perturbed_answers) -> tuple[list[str], list[str], tuple[int, int]]:
    """Each prompt once per option, the options in that order, and the (items, options) shape."""
    options = np.array(list(perturbed_answers))
    return np.repeat(np.array(list(prompts)), options.shape[1]).tolist(), options.reshape(-1).tolist(), options.shape


class ModelEvaluator:
    """Scores one model on the world's fact splits and turns the scores into metric results.

    Each distinct (prompt, answer) is scored once per model and kept: the metrics share items (a forget fact's
    `target_new` is one of its perturbed answers; its paraphrased answer is its answer). `evaluate` first scores
    every item it reads in one `score_answers` call, so a prompt asked with several answers, or read by several
    metrics, goes through the model once. With `distributed`, every process of the run evaluates together: the
    batches are split between them and every process gets every score (`score_answers`).
    """

    def __init__(
        self,
        model,
        data: BehemothData,
        batch_size: int,
        mia_k: float,
        probes: bool = False,
        distributed: bool = False,
        edited_fact_ids: list[int] | None = None,
    ):
        self.model, self.data, self.batch_size, self.mia_k, self.probes = model, data, batch_size, mia_k, probes
        self.tokenizer, self.distributed = data.tokenizer, distributed
        # An edit of some forget facts (`num_edits`, `facts_per_subject`, a request) is judged on those facts.
        self.edited_fact_ids = None if edited_fact_ids is None else set(edited_fact_ids)
        self._scored: dict[tuple[str, str], tuple] = {}

    @cached_property
    def columns(self) -> dict[str, dict[str, list]]:
        """The fact splits as Python columns, converted once (reading a `datasets` column row by row costs more
        than scoring it)."""
        return {name: rows.to_dict() for name, rows in self.data.fact_splits.items()}

    @cached_property
    def utility_sets(self) -> dict[str, dict[str, list]]:
        """The export's OpenUnlearning model-utility sets, as Python columns."""
        return {name: rows.to_pydict() for name, rows in openunlearning_utility_sets(self.data.fact_splits).items()}

    def prefetch(self, prompts, answers) -> None:
        """Score the items not scored yet, in one pass."""
        missing = list(dict.fromkeys(pair for pair in zip(prompts, answers) if pair not in self._scored))
        if not missing:
            return
        new = score_answers(
            self.model,
            self.tokenizer,
            [prompt for prompt, _ in missing],
            [answer for _, answer in missing],
            batch_size=self.batch_size,
            distributed=self.distributed,
        )
        for i, pair in enumerate(missing):
            self._scored[pair] = (
                new.correct[i],
                new.ends[i],
                new.token_logprobs[i],
                new.eos_logprobs[i],
                new.predicted_ids[i],
                new.target_ids[i],
            )

    def score(self, prompts, answers) -> AnswerScores:
        prompts, answers = list(prompts), list(answers)
        if len(prompts) != len(answers):
            raise ValueError(f"`prompts` and `answers` differ in length ({len(prompts)} vs {len(answers)})")
        self.prefetch(prompts, answers)
        entries = [self._scored[pair] for pair in zip(prompts, answers)]
        correct, ends, token_logprobs, eos_logprobs, predicted_ids, target_ids = zip(*entries) if entries else [()] * 6
        return AnswerScores(
            correct=np.array(correct, bool),
            ends=np.array(ends, bool),
            token_logprobs=list(token_logprobs),
            eos_logprobs=np.array(eos_logprobs, np.float64),
            predicted_ids=list(predicted_ids),
            target_ids=list(target_ids),
        )

    def perturbed_mean_nll(self, prompts, perturbed_answers) -> np.ndarray:
        """(items, options) mean NLL of each perturbed answer after the item's prompt."""
        prompts, options, shape = _options(prompts, perturbed_answers)
        return self.score(prompts, options).mean_nll.reshape(shape)

    def rouge(self, prompts, answers) -> dict[str, np.ndarray]:
        """OU's ROUGE of the greedy answers, generated until `<eos>` or OU's 200 tokens (only where the scores do not
        already show them: `scoring.greedy_answers`)."""
        prompts, answers = list(prompts), list(answers)
        generated = greedy_answers(
            self.model,
            self.tokenizer,
            prompts,
            self.score(prompts, answers),
            batch_size=self.batch_size,
            distributed=self.distributed,
        )
        return metrics.rouge_scores(generated, answers)

    def retain_predictions(self) -> list[np.ndarray]:
        """Argmax tokens at the retain answers' positions: what EasyEdit locality compares before/after."""
        retain = self.columns["retain"]
        return self.score(retain["prompt"], retain["answer"]).predicted_ids

    def evaluation_items(self) -> tuple[list[str], list[str]]:
        """Prompts and answers of every item `evaluate` scores (below, in the order it reads them; repeats kept)."""
        splits, prompts, answers = self.columns, [], []

        def add(new_prompts, new_answers) -> None:
            prompts.extend(new_prompts)
            answers.extend(new_answers)

        for split in ACCURACY_SPLITS:
            if split in splits:
                add(splits[split]["prompt"], splits[split]["answer"])
        forget = splits["forget"]
        add(forget["question"], forget["answer"])
        for name in ("forget", "retain"):
            if splits[name]["paraphrased_answer"] != splits[name]["answer"]:
                add(splits[name]["prompt"], splits[name]["paraphrased_answer"])
            add(*_options(splits[name]["prompt"], splits[name]["perturbed_answer"])[:2])
        for prefix, name in OU_UTILITY_SETS.items():
            rows = self.utility_sets[name]
            add(rows["question"], rows["answer"])
            if prefix == "retain":
                add(rows["question"], rows["paraphrased_answer"])
            add(*_options(rows["question"], rows["perturbed_answer"])[:2])
        add(forget["prompt"], forget["target_new"])
        add(forget["paraphrased_question"], forget["target_new"])
        if "dependent" in splits:
            with_target = [
                (p, a) for p, a in zip(splits["dependent"]["prompt"], splits["dependent"]["propagated_answer"]) if a
            ]
            add([p for p, _ in with_target], [a for _, a in with_target])
        return prompts, answers

    def evaluate(self, base_predictions: list[np.ndarray] | None) -> dict[str, Any]:
        """Every metric that needs only this model (and the base model's predictions, for locality)."""
        self.prefetch(*self.evaluation_items())  # one pass: what several metrics read is computed once
        splits = self.columns
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
            if rows["paraphrased_answer"] != rows["answer"]:
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
            for name, (correct, fact_ids) in run_probes(
                self.model, self.data, self.batch_size, self.distributed
            ).items():
                results[name] = metrics.metric_result(
                    metrics.fact_accuracy(correct), correct.astype(float), indices=fact_ids
                )
        return results

    def _openunlearning_utility(self, results: dict) -> None:
        """OU's 9-term TOFU model utility over the export's sets, exactly as OU computes it there: Prob (retain)
        or Prob among the options (real authors, world facts), ROUGE-L recall, and truth ratio (`true_better`;
        correct answer: the paraphrased one on retain, the answer itself on the general-knowledge sets)."""
        terms = {}
        for prefix, name in OU_UTILITY_SETS.items():
            rows = self.utility_sets[name]
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
        indices = _fact_ids(self.columns["forget"]) + _fact_ids(self.columns["holdout"])
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
        forget = self.columns["forget"]
        if self.edited_fact_ids is not None:
            kept = [i for i, fact_id in enumerate(forget["fact_id"]) if fact_id in self.edited_fact_ids]
            forget = {name: [column[i] for i in kept] for name, column in forget.items()}
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
                float(values.mean()), values, indices=_fact_ids(self.columns["retain"])
            )

    def _dependent_propagation(self, results: dict) -> None:
        """Portability and propagation of the dependent facts. A fact has a propagated answer when its base
        fact's edit implies one (every nested inherited fact; a correlated fact only when its pair matched):
        portability is measured on those, and a fact without one can only keep its answer or break."""
        if "dependent" not in self.data.fact_splits:
            return
        dependent = self.data.fact_splits["dependent"]
        old_correct = metrics.item_values(results["dependent_accuracy"]).astype(bool)
        if self.edited_fact_ids is not None:  # only the facts that depend on an edited one can follow it
            kept = [i for i, base in enumerate(dependent["depends_on"]) if base in self.edited_fact_ids]
            dependent, old_correct = dependent.select(kept), old_correct[kept]
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


def _edit_record(model: str | Path) -> dict | None:
    """The record of a model folder made by `behemoth edit` (fine-tuning or an editor), else None."""
    from behemoth_hf.unlearn.run import RECORD_FILE, is_edit_method

    path = Path(model) / RECORD_FILE
    record = json.loads(path.read_text()) if path.is_file() else {}
    return record if is_edit_method(record.get("method")) else None


def is_edit_run(model: str | Path) -> bool:
    """Was the model folder made by `behemoth edit` (its unlearning record says so)?"""
    return _edit_record(model) is not None


def _evaluator(
    path: str, data: BehemothData, args: EvaluationArguments, state: PartialState, distributed: bool
) -> ModelEvaluator:
    """The evaluator of the model in `path`, on this process's device (its own GPU under a multi-GPU launch)."""
    model, _ = load_model(data, path)
    model.to(state.device)
    record = _edit_record(path)
    edited = record.get("edited_fact_ids") if record is not None else None
    return ModelEvaluator(
        model, data, args.batch_size, args.mia_k, args.probes, distributed=distributed, edited_fact_ids=edited
    )


def run_evaluation(args: EvaluationArguments) -> dict[str, dict[str, Any]]:
    """Evaluate every model (and the oracle when it is a model folder); write results, report and plots.

    Under `torchrun`/`accelerate launch` every process runs this and the results are the same as one process's
    (`_evaluate_all`); the main process writes while the others wait for it.
    """
    import torch
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    # CPU processes form a group only when asked to (`PartialState(cpu=True)`): as `Accelerator` does, with
    # ACCELERATE_USE_CPU=1, and without a GPU always (evaluation runs on the CPU then).
    state = PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU") or not torch.cuda.is_available())
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
    distributed = state.num_processes > 1
    base_predictions = (
        _evaluator(args.base, data, args, state, distributed).retain_predictions() if args.base else None
    )

    jobs = [("oracle", args.oracle)] if oracle_is_model else []
    jobs += list(zip(names, args.model))
    evaluated = _evaluate_all(jobs, data, args, base_predictions, state)
    if args.oracle is not None and not oracle_is_model:
        # Given as its results file: shown like an evaluated oracle in the report and plots, and copied as it is.
        evaluated = {"oracle": metrics.read_eval_json(args.oracle), **evaluated}
    for name, results in evaluated.items():
        if name != "oracle" or oracle_is_model:  # an evaluated oracle against itself: forget quality 1.0
            add_reference_metrics(results, evaluated.get("oracle"))
    if state.is_main_process:
        with staged_output(output, SUMMARY_FILE, overwrite=args.overwrite) as staging:
            _write_evaluation(staging, evaluated, data, args, names)
    state.wait_for_everyone()
    return evaluated


def _evaluate_all(
    jobs: list[tuple[str, str]],
    data: BehemothData,
    args: EvaluationArguments,
    base_predictions: list[np.ndarray] | None,
    state: PartialState,
) -> dict[str, dict[str, Any]]:
    """`ModelEvaluator.evaluate` of every (name, model folder) in `jobs`, on every process of the run.

    Whole models go to single processes, round robin, as long as every process gets one (each then needs only its
    own models in memory, and its metrics too run in parallel); the models left over, fewer than the processes,
    are scored by all of them together (`score_answers(distributed=True)`). Either way every item is scored in
    the batches one process would make, so the results are the same on any number of processes.
    """
    from accelerate.utils import gather_object

    processes, rank = state.num_processes, state.process_index
    whole = len(jobs) - len(jobs) % processes
    progress = tqdm(total=len(jobs), desc="evaluate", unit="model", disable=not state.is_main_process)
    mine = []
    for index, (_, path) in enumerate(jobs):
        alone = index < whole
        if alone and index % processes != rank:
            continue
        mine.append((index, _evaluator(path, data, args, state, distributed=not alone).evaluate(base_predictions)))
        # Every process finishes a round of whole models at about the same time.
        progress.update(processes if alone else 1)
    if processes > 1:
        gathered = dict(gather_object(mine))  # the shared models arrive once from every process: all equal
    else:
        gathered = dict(mine)
    progress.close()
    return {name: gathered[index] for index, (name, _) in enumerate(jobs)}


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
