"""Paired forget/retain batches: prompt + answer + `<eos>` rows with labels on the answer and `<eos>` only."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from transformers import PreTrainedTokenizerBase

from behemoth_hf.scoring import encode_prompt_answer
from behemoth_hf.unlearn.losses import IGNORE_INDEX


def encode_examples(tokenizer: PreTrainedTokenizerBase, prompts, answers) -> list[dict[str, list[int]]]:
    """`prompt answer <eos>` token ids, labels = -100 on the prompt.

    The loss sees the answer and the `<eos>` that ends the fact: the sequence pretraining labels, evaluation
    scores and OpenUnlearning trains on (its QA datasets append `<eos>` to every answer).
    """
    full_ids, prompt_lengths = encode_prompt_answer(tokenizer, prompts, answers)
    eos = [tokenizer.eos_token_id]
    return [
        {"input_ids": ids + eos, "labels": [IGNORE_INDEX] * length + ids[length:] + eos}
        for ids, length in zip(full_ids, prompt_lengths)
    ]


class ForgetRetainDataset(Dataset):
    """One item per forget example, paired with a retain example drawn (seeded) per index.

    As OpenUnlearning's `ForgetRetainDataset` with `anchor=forget`: an epoch is one pass over the
    forget set. Without retain examples, items hold only `forget`.
    """

    def __init__(self, forget: list[dict], retain: list[dict] | None, seed: int):
        if not forget:
            raise ValueError("the forget split is empty: there is nothing to unlearn or edit")
        self.forget, self.retain = forget, retain or None
        self.retain_index = (
            np.random.default_rng([seed, 11]).integers(0, len(self.retain), len(forget)) if self.retain else None
        )

    def __len__(self) -> int:
        return len(self.forget)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = {"forget": self.forget[index]}
        if self.retain is not None:
            item["retain"] = self.retain[int(self.retain_index[index])]
        return item


class PairedCollator:
    """Right-pads each part of the batch: input_ids with the pad token, labels with -100."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, dict[str, torch.Tensor]]:
        return {part: self._pad([item[part] for item in items]) for part in items[0]}

    def _pad(self, rows: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(row["input_ids"]) for row in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            length = len(row["input_ids"])
            input_ids[i, :length] = torch.tensor(row["input_ids"])
            labels[i, :length] = torch.tensor(row["labels"])
            attention_mask[i, :length] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
