"""forget_quality: TOFU / OpenUnlearning forget quality (KS-test p-value vs the retain model) as an `evaluate` metric.

A thin wrapper over `behemoth_hf.metrics.quality.forget_quality`; load it offline with
`evaluate.load(behemoth_hf.metrics.evaluate_module_path("forget_quality"))`.
"""

import datasets
import evaluate

from behemoth_hf.metrics.modules import TOFU_CITATION
from behemoth_hf.metrics.quality import forget_quality, ks_test


_DESCRIPTION = """
Forget quality (TOFU, OpenUnlearning): the p-value of a two-sample Kolmogorov-Smirnov test
(`scipy.stats.ks_2samp`) between the unlearned model's per-item truth ratios on the forget set and those of a
retain model trained without it. 1.0 for identical distributions; TOFU reads >= 0.05 as indistinguishable.
"""

_KWARGS_DESCRIPTION = """
Args:
    truth_ratios (`list` of `float`): per-item truth ratios of the evaluated model on the forget set.
    reference_truth_ratios (`list` of `float`): per-item truth ratios of the retain model on the same forget set
        (its length may differ; it is a keyword argument, not an input column).
Returns:
    forget_quality (`float`): the KS-test p-value.
    ks_statistic (`float`): the KS distance D.
Examples:
    >>> metric = evaluate.load(evaluate_module_path("forget_quality"))
    >>> metric.compute(truth_ratios=[0.2, 0.5, 0.9], reference_truth_ratios=[0.2, 0.5, 0.9])
    {'forget_quality': 1.0, 'ks_statistic': 0.0}
"""

_CITATION = TOFU_CITATION


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class ForgetQuality(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"truth_ratios": datasets.Value("float64")}),
        )

    def _compute(self, truth_ratios, reference_truth_ratios=None) -> dict:
        if reference_truth_ratios is None:
            raise ValueError("`reference_truth_ratios` is required: the retain model's per-item truth ratios.")
        statistic, _ = ks_test(truth_ratios, reference_truth_ratios)
        return {
            "forget_quality": forget_quality(truth_ratios, reference_truth_ratios),
            "ks_statistic": statistic,
        }
