"""Batched teacher-forced scoring of answers after prompts.

One forward pass over `prompt + " " + answer` gives, for every answer token, its log-probability and
whether it is the argmax. The answer is what greedy decoding would produce exactly when every answer
token is the argmax (each greedy step then conditions on the correct prefix), so exact-match accuracy,
answer probability and truth ratios all come from the same pass; no generation is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


@dataclass
class AnswerScores:
    """Per-item scores. The lists hold, per item, one entry per answer token: its log-probability, the
    model's argmax given the gold prefix, and the answer token itself."""

    correct: np.ndarray  # bool: greedy continuation of the prompt is exactly the answer
    nll: np.ndarray  # summed negative log-likelihood of the answer tokens
    num_tokens: np.ndarray  # answer tokens per item
    token_logprobs: list[np.ndarray]
    predicted_ids: list[np.ndarray]
    target_ids: list[np.ndarray]

    @property
    def mean_nll(self) -> np.ndarray:
        """Per-token (length-normalised) NLL, as TOFU/OpenUnlearning use for truth ratios."""
        return self.nll / self.num_tokens

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self.correct) else float("nan")


def encode_prompt_answer(
    tokenizer: PreTrainedTokenizerBase, prompts: list[str], answers: list[str]
) -> tuple[list[list[int]], list[int]]:
    """Token ids of each `prompt answer` and the number of prompt tokens (answer tokens follow them)."""
    prompts, answers = list(prompts), list(answers)  # also accepts datasets columns
    if len(prompts) != len(answers):
        raise ValueError(f"`prompts` and `answers` differ in length ({len(prompts)} vs {len(answers)})")
    prompt_ids = tokenizer(prompts, add_special_tokens=False).input_ids
    full_ids = tokenizer([f"{p} {a}" for p, a in zip(prompts, answers)], add_special_tokens=False).input_ids
    for prompt, full in zip(prompt_ids, full_ids):
        if full[: len(prompt)] != prompt or len(full) == len(prompt):
            raise ValueError("tokenizer is not prefix-consistent for these prompts/answers (or an answer is empty)")
    return full_ids, [len(prompt) for prompt in prompt_ids]


@torch.inference_mode()
def score_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    answers: list[str],
    *,
    batch_size: int = 256,
) -> AnswerScores:
    """Score `answers` after `prompts` in batches of `batch_size` (model put in eval mode, then restored)."""
    full_ids, prompt_lengths = encode_prompt_answer(tokenizer, prompts, answers)
    pad_id = tokenizer.pad_token_id
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct, nll, lengths, token_logprobs, predicted_ids, target_ids = [], [], [], [], [], []
    try:
        for start in range(0, len(full_ids), batch_size):
            rows = full_ids[start : start + batch_size]
            width = max(len(row) for row in rows)
            input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
            answer_mask = torch.zeros((len(rows), width), dtype=torch.bool)
            for i, row in enumerate(rows):
                input_ids[i, : len(row)] = torch.tensor(row)
                attention_mask[i, : len(row)] = 1
                answer_mask[i, prompt_lengths[start + i] : len(row)] = True
            input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
            # Position t predicts token t + 1.
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
            targets = input_ids[:, 1:]
            target_logprobs = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).cpu()
            argmax = logprobs.argmax(-1).cpu()
            targets = targets.cpu()
            mask = answer_mask[:, 1:]
            for i in range(len(rows)):
                item_logprobs = target_logprobs[i][mask[i]].numpy()
                token_logprobs.append(item_logprobs)
                predicted_ids.append(argmax[i][mask[i]].numpy())
                target_ids.append(targets[i][mask[i]].numpy())
                nll.append(-float(item_logprobs.sum()))
                lengths.append(len(item_logprobs))
                correct.append(bool((predicted_ids[-1] == target_ids[-1]).all()))
    finally:
        model.train(was_training)
    return AnswerScores(
        correct=np.array(correct, bool),
        nll=np.array(nll, np.float64),
        num_tokens=np.array(lengths, np.int64),
        token_logprobs=token_logprobs,
        predicted_ids=predicted_ids,
        target_ids=target_ids,
    )
