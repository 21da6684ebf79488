"""mia_auc: membership-inference AUC (forget vs holdout) and privacy leakage as an `evaluate` metric.

A thin wrapper over `behemoth_hf.metrics.privacy.roc_auc` and `privleak`; load it offline with
`evaluate.load(behemoth_hf.metrics.evaluate_module_path("mia_auc"))`.
"""

import datasets
import evaluate

from behemoth_hf.metrics.privacy import privleak, roc_auc


_DESCRIPTION = """
Membership-inference AUC as OpenUnlearning computes it: ROC AUC of per-item attack scores (higher = looks less
like a training member, e.g. the loss or the min-k% score) with label 0 for forget items and 1 for holdout
items. 1.0: the forget facts still look like members; 0.5: like never-seen facts. With `reference_auc` (the
retain model's AUC, OpenUnlearning defaults to 0.5) it also returns privacy leakage,
`100 * ((1 - AUC) - (1 - AUC_ref)) / (1 - AUC_ref + 1e-10)`.
"""

_KWARGS_DESCRIPTION = """
Args:
    scores (`list` of `float`): attack score per item.
    labels (`list` of `int`): 0 for a forget (member) item, 1 for a holdout (non-member) item.
    reference_auc (`float`, optional): the retain model's AUC; if given, `privleak` is returned too.
Returns:
    auc (`float`): ROC AUC in [0, 1].
    privleak (`float`, only with `reference_auc`): privacy leakage in percent.
Examples:
    >>> metric = evaluate.load(evaluate_module_path("mia_auc"))
    >>> metric.compute(scores=[0.1, 0.2, 0.8, 0.9], labels=[0, 0, 1, 1])
    {'auc': 1.0}
"""

_CITATION = """
@article{shi2024muse,
  title = {MUSE: Machine Unlearning Six-Way Evaluation for Language Models},
  author = {Shi, Weijia and Lee, Jaechan and Huang, Yangsibo and Malladi, Sadhika and others},
  journal = {arXiv preprint arXiv:2407.06460},
  year = {2024}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MiaAuc(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"scores": datasets.Value("float64"), "labels": datasets.Value("int64")}),
        )

    def _compute(self, scores, labels, reference_auc=None) -> dict:
        auc = roc_auc(labels, scores)
        if reference_auc is None:
            return {"auc": auc}
        return {"auc": auc, "privleak": privleak(auc, reference_auc)}
