"""Metric math for Behemoth: plain functions on numpy arrays, no model calls (DESIGN.md "Metrics").

A scorer produces per-item answer NLLs, per-token log-probs / argmax ids and greedy answers; these
functions turn them into OpenUnlearning / TOFU / EasyEdit-compatible numbers, and `results` writes them in
OpenUnlearning's `*_EVAL.json` shape. `evaluate` wrappers: `evaluate.load(evaluate_module_path(name))`.
"""

from behemoth_hf.metrics.editing import (
    edit_score,
    generalization,
    locality,
    neighborhood_magnitude,
    neighborhood_success,
    portability,
    reliability,
    rewrite_magnitude,
    rewrite_success,
)
from behemoth_hf.metrics.memorization import (
    FORGET_TRUTH_RATIO_AGGREGATOR,
    RETAIN_TRUTH_RATIO_AGGREGATOR,
    TRUTH_RATIO_AGGREGATORS,
    aggregate_truth_ratio,
    answer_probability,
    exact_match,
    exact_memorization,
    extraction_strength,
    extraction_strength_from_hits,
    fact_accuracy,
    normalized_answer_probability,
    rouge_scores,
    token_accuracy,
    token_hit_rate,
    truth_ratio,
)
from behemoth_hf.metrics.modules import EVALUATE_MODULES, evaluate_module_path
from behemoth_hf.metrics.privacy import (
    loss_scores,
    mia_auc,
    min_k_plus_plus_scores,
    min_k_scores,
    privleak,
    roc_auc,
    zlib_scores,
)
from behemoth_hf.metrics.propagation import (
    OUTCOMES,
    classify_propagation,
    classify_propagation_from_correct,
    propagation_rates,
)
from behemoth_hf.metrics.quality import (
    FORGET_QUALITY_THRESHOLD,
    TOFU_MODEL_UTILITY_METRICS,
    forget_quality,
    ks_test,
    model_utility,
    relative_difference,
)
from behemoth_hf.metrics.results import item_values, metric_result, read_eval_json, summary, write_results


__all__ = [
    "EVALUATE_MODULES",
    "FORGET_QUALITY_THRESHOLD",
    "FORGET_TRUTH_RATIO_AGGREGATOR",
    "OUTCOMES",
    "RETAIN_TRUTH_RATIO_AGGREGATOR",
    "TOFU_MODEL_UTILITY_METRICS",
    "TRUTH_RATIO_AGGREGATORS",
    "aggregate_truth_ratio",
    "answer_probability",
    "classify_propagation",
    "classify_propagation_from_correct",
    "edit_score",
    "evaluate_module_path",
    "exact_match",
    "exact_memorization",
    "extraction_strength",
    "extraction_strength_from_hits",
    "fact_accuracy",
    "forget_quality",
    "generalization",
    "item_values",
    "ks_test",
    "locality",
    "loss_scores",
    "metric_result",
    "mia_auc",
    "min_k_plus_plus_scores",
    "min_k_scores",
    "model_utility",
    "neighborhood_magnitude",
    "neighborhood_success",
    "normalized_answer_probability",
    "portability",
    "privleak",
    "propagation_rates",
    "read_eval_json",
    "relative_difference",
    "reliability",
    "rewrite_magnitude",
    "rewrite_success",
    "roc_auc",
    "rouge_scores",
    "summary",
    "token_accuracy",
    "token_hit_rate",
    "truth_ratio",
    "write_results",
    "zlib_scores",
]
