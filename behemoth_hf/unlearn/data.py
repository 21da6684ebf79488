"""Paired forget/retain batches: prompt + answer + `<eos>` rows with labels on the answer and `<eos>` only."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import pairwise
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler
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
    forget set. Without retain examples, items hold only `forget`. Every item carries its `index`, which
    keys what a trainer computed once per example (the reference model's log-probabilities).
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
        item = {"index": index, "forget": self.forget[index]}
        if self.retain is not None:
            item["retain"] = self.retain[int(self.retain_index[index])]
        return item


class GlobalBatchSampler(Sampler[list[int]]):
    """The batches of one optimizer step on every process: `sampler`'s order cut into global batches of
    `per_device_batch_size x num_processes` examples, each cut into `num_processes` contiguous slices (sizes differ
    by at most one), yielded in turn.

    accelerate's `BatchSamplerShard` deals batch i to process i mod `num_processes`, so process r trains on slice r
    of every global batch: every example once per epoch across the processes, and a step's examples are those of a
    one-process run with the global batch size (`sampler` is replaced by accelerate's seedable sampler, which
    shuffles alike on every process). Without this, the last, incomplete batch of an epoch would be topped up with
    repeats of its first examples. A last global batch with fewer examples than processes joins the one before it
    (no process may get an empty batch).
    """

    def __init__(self, sampler: Sampler, per_device_batch_size: int, num_processes: int, drop_last: bool = False):
        if per_device_batch_size < 1 or num_processes < 1:
            raise ValueError(
                f"`per_device_batch_size` and `num_processes` must be >= 1, got {per_device_batch_size}, "
                f"{num_processes}"
            )
        if len(sampler) < num_processes:
            raise ValueError(
                f"{len(sampler)} training example(s) cannot be shared by {num_processes} processes: "
                "run fewer processes or give more forget examples"
            )
        self.sampler = sampler
        self.global_batch_size = per_device_batch_size * num_processes
        self.num_processes = num_processes
        self.drop_last = drop_last

    def _bounds(self) -> list[int]:
        """Start of every global batch, and the end of the last."""
        count = len(self.sampler)
        full, rest = divmod(count, self.global_batch_size)
        bounds = [start * self.global_batch_size for start in range(full + 1)]
        if rest and not self.drop_last:
            if rest >= self.num_processes:
                bounds.append(count)
            else:  # too few for every process: joins the previous global batch (there is one: count >= processes)
                bounds[-1] = count
        return bounds

    def __len__(self) -> int:
        return (len(self._bounds()) - 1) * self.num_processes

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.sampler)
        bounds = self._bounds()
        for start, stop in pairwise(bounds):
            for piece in np.array_split(np.arange(start, stop), self.num_processes):
                yield [order[position] for position in piece]


def pad_examples(rows: list[dict[str, list[int]]], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-padded `input_ids` (pad token), `attention_mask` and `labels` (-100) of `encode_examples` rows."""
    width = max(len(row["input_ids"]) for row in rows)
    input_ids = torch.full((len(rows), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        length = len(row["input_ids"])
        input_ids[i, :length] = torch.tensor(row["input_ids"])
        labels[i, :length] = torch.tensor(row["labels"])
        attention_mask[i, :length] = 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


class PairedCollator:
    """Right-pads each part of the batch (`pad_examples`) and keeps the examples' indices."""

    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        batch: dict[str, Any] = {"index": torch.tensor([item["index"] for item in items])}
        batch.update(
            {
                part: pad_examples([item[part] for item in items], self.pad_token_id)
                for part in items[0]
                if part != "index"
            }
        )
        return batch
