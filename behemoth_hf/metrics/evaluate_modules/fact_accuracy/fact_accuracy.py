"""fact_accuracy: Behemoth fact accuracy (exact greedy answer) as an `evaluate` metric.

A thin wrapper over `behemoth_hf.metrics.memorization.exact_match` and `fact_accuracy`; load it offline with
`evaluate.load(behemoth_hf.metrics.evaluate_module_path("fact_accuracy"))`.
"""

import datasets
import evaluate

from behemoth_hf.builder import CITATION
from behemoth_hf.metrics.memorization import exact_match, fact_accuracy


_DESCRIPTION = """
Fact accuracy: the fraction of facts whose greedy answer equals the reference answer exactly,
`mean_i 1[prediction_i == reference_i]`. Strings are compared after stripping surrounding whitespace;
integer inputs (e.g. answer entity ids) are compared as they are.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `str` or `int`): the model's greedy answer per fact.
    references (`list` of `str` or `int`): the true answer per fact.
Returns:
    accuracy (`float`): fraction of exact matches, in [0, 1].
Examples:
    >>> metric = evaluate.load(evaluate_module_path("fact_accuracy"))
    >>> metric.compute(predictions=["doka", "finu"], references=["doka", "bako"])
    {'accuracy': 0.5}
"""

_CITATION = CITATION


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class FactAccuracy(evaluate.Metric):
    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[
                datasets.Features({"predictions": datasets.Value("string"), "references": datasets.Value("string")}),
                datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
            ],
        )

    def _compute(self, predictions, references) -> dict:
        if predictions and isinstance(predictions[0], str):
            correct = exact_match(predictions, references)
        else:
            if len(predictions) != len(references):
                raise ValueError(f"`predictions` has {len(predictions)} items but `references` {len(references)}.")
            correct = [p == r for p, r in zip(predictions, references)]
        return {"accuracy": fact_accuracy(correct)}
