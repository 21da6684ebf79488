"""truth_ratio: TOFU / OpenUnlearning truth ratio as an `evaluate` metric.

A thin wrapper over `behemoth_hf.metrics.memorization.truth_ratio` and `aggregate_truth_ratio`; load it
offline with `evaluate.load(behemoth_hf.metrics.evaluate_module_path("truth_ratio"))`.
"""

import datasets
import evaluate

from behemoth_hf.metrics.modules import TOFU_CITATION
from behemoth_hf.metrics.memorization import OU_EPSILON, aggregate_truth_ratio, truth_ratio


_DESCRIPTION = """
Truth ratio (TOFU, OpenUnlearning): per item `R = exp(-mean_j nll_wrong_j) / (exp(-nll_correct) + 1e-10)`, where
`nll` are mean-token negative log-likelihoods of the correct (paraphrased) answer and of the perturbed answers.
Aggregates: `closer_to_1_better` = mean(min(R, 1/R)) for forget sets, `true_better` = mean(max(0, 1 - R)) for
retain / general-knowledge sets, `mean` = mean(R).
"""

_KWARGS_DESCRIPTION = """
Args:
    correct_nll (`list` of `float`): mean-token NLL of the correct answer, one per item.
    perturbed_nll (`list` of `list` of `float`): mean-token NLL of each perturbed answer, one list per item
        (same number of options for every item).
    aggregator (`str`, optional): "closer_to_1_better" (default, forget sets), "true_better" or "mean".
    epsilon (`float`, optional): OpenUnlearning's 1e-10 by default; 0.0 computes the exact ratio.
Returns:
    truth_ratio (`float`): the aggregate.
    truth_ratios (`list` of `float`): the per-item ratios R (what forget quality compares).
Examples:
    >>> metric = evaluate.load(evaluate_module_path("truth_ratio"))
    >>> metric.compute(correct_nll=[1.0], perturbed_nll=[[1.0, 1.0]])["truth_ratio"]
    0.99...
"""

_CITATION = TOFU_CITATION


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TruthRatio(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "correct_nll": datasets.Value("float64"),
                    "perturbed_nll": datasets.List(datasets.Value("float64")),
                }
            ),
        )

    def _compute(self, correct_nll, perturbed_nll, aggregator="closer_to_1_better", epsilon=OU_EPSILON) -> dict:
        ratios = truth_ratio(correct_nll, perturbed_nll, epsilon=epsilon)
        return {
            "truth_ratio": aggregate_truth_ratio(ratios, aggregator, epsilon=epsilon),
            "truth_ratios": ratios.tolist(),
        }
