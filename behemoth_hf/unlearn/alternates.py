"""Alternate answers for the preference and refusal methods: each forget example paired with an answer to prefer.

The alternates ride in the batch as a third part, `alternate`, padded like `forget` and `retain` by `PairedCollator`
(OpenUnlearning's DPO batches hold the same pair as `forget.original` / `forget.alternate`).
"""

from __future__ import annotations

from typing import Any

from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from behemoth_hf.unlearn.data import encode_examples
from behemoth_hf.unlearn.losses import IGNORE_INDEX


def prompt_length(example: dict[str, list[int]]) -> int:
    """Tokens before the first labelled one: the prompt of a `prompt answer <eos>` example."""
    return next(i for i, label in enumerate(example["labels"]) if label != IGNORE_INDEX)


class AlternateDataset(Dataset):
    """A `ForgetRetainDataset` whose items also hold `alternate`: the forget example's prompt with another answer."""

    def __init__(self, dataset, tokenizer: PreTrainedTokenizerBase, answers: list[str]):
        forget = dataset.forget
        if len(answers) != len(forget):
            raise ValueError(f"{len(answers)} alternate answers for {len(forget)} forget examples")
        prompts = [tokenizer.decode(example["input_ids"][: prompt_length(example)]) for example in forget]
        self.dataset, self.alternates = dataset, encode_examples(tokenizer, prompts, answers)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return {**self.dataset[index], "alternate": self.alternates[index]}
