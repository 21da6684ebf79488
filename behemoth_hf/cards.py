"""Model cards from the `model_cards/` templates, declared through `huggingface_hub.ModelCardData`."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

# The paper, cited by the dataset card, the model cards and the evaluate modules too.
CITATION = """\
@article{iofinova2026behemoth,
  title   = {Behemoth: Benchmarking Unlearning in LLMs Using Fully Synthetic Data},
  author  = {Iofinova, Eugenia and Alistarh, Dan},
  journal = {arXiv preprint arXiv:2601.23153},
  year    = {2026}
}
"""


def _template(name: str) -> str:
    return resources.files("behemoth_hf.model_cards").joinpath(name).read_text()


def write_model_card(folder: Path, record: dict[str, Any]) -> None:
    """README.md for a pretrained model: metadata (model-index of fact accuracies) plus a readable body."""
    model_name = Path(record["arguments"]["output_dir"]).name
    eval_results = [
        EvalResult(
            task_type="text-generation",
            dataset_type="behemoth",
            dataset_name=f"Behemoth {record['dataset_config']}",
            dataset_config=record["dataset_config"],
            dataset_split=split,
            metric_type="accuracy",
            metric_name=f"fact accuracy ({split})",
            metric_value=round(value, 6),
        )
        for split, value in record["accuracy"].items()
    ]
    card_data = ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        model_name=model_name,
        pipeline_tag="text-generation",
        tags=["behemoth", "synthetic", "unlearning", "oracle" if record["oracle"] else "pretrained"],
        eval_results=eval_results,
    )
    card = ModelCard.from_template(
        card_data, template_str=_template("model_card.md"), model_name=model_name, citation=CITATION, **record
    )
    (folder / "README.md").write_text(str(card))


def write_unlearning_card(folder: Path, record: dict[str, Any]) -> None:
    """README.md for an unlearned or edited model (evaluation results are added by `behemoth evaluate`)."""
    model_name = Path(record["arguments"]["output_dir"]).name
    card_data = ModelCardData(
        library_name="transformers",
        license="apache-2.0",
        model_name=model_name,
        pipeline_tag="text-generation",
        tags=["behemoth", "synthetic", "unlearning", record["method"]],
    )
    card = ModelCard.from_template(
        card_data,
        template_str=_template("unlearned_card.md"),
        model_name=model_name,
        base_model=Path(record["model"]).name,
        citation=CITATION,
        **record,
    )
    (folder / "README.md").write_text(str(card))


def write_quantized_card(folder: Path, model_name: str, source: Path, record: dict[str, Any]) -> None:
    """README.md for a quantization round trip: the source model's card, tagged, with what was done on top."""
    source_card = source / "README.md"
    card = ModelCard.load(source_card) if source_card.is_file() else ModelCard(str(ModelCardData()))
    tags = [*(card.data.tags or []), "quantized", f"rtn-int{record['bits']}"]
    card.data.tags = list(dict.fromkeys(tags))
    card.data.base_model = source.resolve().name
    card.data.model_name = model_name
    group = record["group_size"] or "one per output channel"
    note = (
        f"\n> [!NOTE]\n> `{source.resolve().name}` with every linear layer except the output embedding round-tripped "
        f"through {record['bits']}-bit {record['scheme']} quantization (scales per group of {group} input columns) "
        "by `behemoth attack quantize`; the weights are stored de-quantized in float. Details in "
        "`quantization_record.json`.\n"
    )
    card.text = note + card.text
    (folder / "README.md").write_text(str(card))
