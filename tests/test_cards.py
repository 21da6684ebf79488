"""Dataset and model cards cite the Behemoth paper correctly, from the one `CITATION` constant."""

import re
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from behemoth_hf.builder import CITATION, Behemoth
from behemoth_hf.cards import write_model_card, write_unlearning_card
from behemoth_hf.config import make_config
from behemoth_hf.generate import generate_dataset


REPO = Path(__file__).resolve().parents[1]


def test_citation_names_the_paper():
    assert "title   = {Behemoth: Benchmarking Unlearning in LLMs Using Fully Synthetic Data}" in CITATION
    assert "author  = {Iofinova, Eugenia and Alistarh, Dan}" in CITATION
    assert "arXiv:2601.23153" in CITATION


def test_dataset_builder_and_generated_card_cite_it(tmp_path):
    assert Behemoth(config_name="tiny", cache_dir=str(tmp_path / "cache")).info.citation == CITATION
    folder = generate_dataset(make_config("tiny", repeats=1), tmp_path / "world", progress=False)
    assert f"```bibtex\n{CITATION}```" in (folder / "README.md").read_text()


def _pretrain_record(output_dir: Path) -> dict:
    return {
        "arguments": {"output_dir": str(output_dir), "preset": "tiny", "loss": "answer", "learning_rate": 3e-3},
        "accuracy": {"forget": 1.0, "retain": 0.98},
        "dataset_config": "tiny",
        "dataset_fingerprint": "abc",
        "oracle": False,
        "excluded_split": None,
        "model_type": "gpt_neox",
        "num_parameters": 1234,
        "example_prompt": "doka finu",
        "steps": 10,
        "one_pass_steps": 10,
        "stopped_early": False,
        "sentences_seen": 320,
        "seed": 0,
        "wall_seconds": 1.0,
    }


def _unlearning_record(output_dir: Path) -> dict:
    return {
        "arguments": {"output_dir": str(output_dir)},
        "model": "/models/tiny",
        "method": "npo",
        "forget_split": "forget",
        "dataset_config": "tiny",
        "dataset_fingerprint": "abc",
        "restriction": {"lora_rank": None, "trainable_blocks": "all", "trainable_layers": None},
        "hyperparameters": {"beta": 0.1},
        "num_forget_examples": 8,
        "trainable_parameters": 1234,
        "total_parameters": 1234,
        "steps": 5,
        "seed": 0,
    }


@pytest.mark.parametrize(
    "write, record", [(write_model_card, _pretrain_record), (write_unlearning_card, _unlearning_record)]
)
def test_model_cards_cite_it(write, record, tmp_path):
    write(tmp_path, record(tmp_path / "model"))
    card = ModelCard.load(tmp_path / "README.md")
    assert f"## Citation\n\n```bibtex\n{CITATION}```" in card.text
    assert card.data.model_name == "model"


def test_the_citation_is_written_once():
    """Templates, evaluate modules and docs take `CITATION`; only cards.py spells out a BibTeX title."""
    files = [REPO / "README.md", *(REPO / "model_cards").glob("*.md"), *(REPO / "behemoth_hf").rglob("*.py")]
    spelled_out = [
        path.relative_to(REPO).as_posix()
        for path in files
        if "2601.23153" in (text := path.read_text()) and re.search(r"^\s*title\s*=\s*\{", text, re.MULTILINE)
    ]
    assert spelled_out == ["behemoth_hf/cards.py"]
