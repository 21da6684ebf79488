"""Batched teacher-forced scoring of answers after prompts, and greedy generation of answers.

One forward pass over `prompt + " " + answer <eos>` gives, for every answer token and for the `<eos>` that
ends the fact (the model learns it, `pretrain.SentenceBatches`), its log-probability and whether it is the
argmax. The answer is what greedy decoding would produce exactly when every answer token is the argmax
(each greedy step then conditions on the correct prefix), so exact-match accuracy, answer probability and
truth ratios all come from the same pass. The sequence is OpenUnlearning's (`QADataset` with the export's
template: question, a space, the answer, then `<eos>` appended), so its numbers and ours agree:
length-normalised NLL over the answer tokens and `<eos>` (probability, truth ratio, MIA loss), answer
tokens only for the token-wise metrics OU computes without the final `<eos>` (min-k%, exact memorization,
extraction strength). ROUGE needs real generation: `generate_answers`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase


# OpenUnlearning's TOFU generation length (configs/generation/default.yaml); greedy decoding stops earlier at <eos>.
OU_MAX_NEW_TOKENS = 200


@dataclass
class AnswerScores:
    """Per-item scores. The lists hold, per item, one entry per answer token (the `<eos>` after the answer is
    kept apart, in `eos_logprobs` / `ends`): its log-probability, the model's argmax given the gold prefix,
    and the answer token itself."""

    correct: np.ndarray  # bool: greedy continuation of the prompt starts with exactly the answer
    ends: np.ndarray  # bool: ... and <eos> is the argmax right after the answer (greedy decoding stops there)
    token_logprobs: list[np.ndarray]
    eos_logprobs: np.ndarray  # log p(<eos> | prompt, answer)
    predicted_ids: list[np.ndarray]
    target_ids: list[np.ndarray]

    @property
    def nll(self) -> np.ndarray:
        """Summed negative log-likelihood of the answer tokens and the `<eos>` after them."""
        return -np.array([row.sum() for row in self.token_logprobs], np.float64) - self.eos_logprobs

    @property
    def num_tokens(self) -> np.ndarray:
        """Scored tokens per item: the answer tokens and `<eos>`."""
        return np.array([len(row) + 1 for row in self.token_logprobs], np.int64)

    @property
    def mean_nll(self) -> np.ndarray:
        """Per-token (length-normalised) NLL over answer + `<eos>`: OpenUnlearning's `avg_loss`."""
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
    """Score `answers` + `<eos>` after `prompts` in batches of `batch_size` (model put in eval mode, then restored)."""
    full_ids, prompt_lengths = encode_prompt_answer(tokenizer, prompts, answers)
    pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct, ends, token_logprobs, eos_logprobs, predicted_ids, target_ids = [], [], [], [], [], []
    try:
        for start in range(0, len(full_ids), batch_size):
            rows = [row + [eos_id] for row in full_ids[start : start + batch_size]]
            width = max(len(row) for row in rows)
            input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, row in enumerate(rows):
                input_ids[i, : len(row)] = torch.tensor(row)
                attention_mask[i, : len(row)] = 1
            input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits.float()
            # Position t predicts token t + 1.
            logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
            targets = input_ids[:, 1:]
            target_logprobs = logprobs.gather(-1, targets.unsqueeze(-1)).squeeze(-1).cpu().numpy()
            argmax = logprobs.argmax(-1).cpu().numpy()
            targets = targets.cpu().numpy()
            for i, row in enumerate(rows):
                # Predictions of the answer tokens, then of the <eos> (the row's last token).
                answer = slice(prompt_lengths[start + i] - 1, len(row) - 2)
                eos = len(row) - 2
                token_logprobs.append(target_logprobs[i, answer])
                predicted_ids.append(argmax[i, answer])
                target_ids.append(targets[i, answer])
                eos_logprobs.append(float(target_logprobs[i, eos]))
                correct.append(bool((predicted_ids[-1] == target_ids[-1]).all()))
                ends.append(correct[-1] and bool(argmax[i, eos] == eos_id))
    finally:
        model.train(was_training)
    return AnswerScores(
        correct=np.array(correct, bool),
        ends=np.array(ends, bool),
        token_logprobs=token_logprobs,
        eos_logprobs=np.array(eos_logprobs, np.float64),
        predicted_ids=predicted_ids,
        target_ids=target_ids,
    )


@torch.inference_mode()
def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    *,
    max_new_tokens: int = OU_MAX_NEW_TOKENS,
    batch_size: int = 256,
) -> list[str]:
    """Greedy continuations of `prompts` up to `<eos>` or `max_new_tokens`, decoded without special tokens.

    As OpenUnlearning's `rouge` metric generates (left-padded batches, `<eos>` ends a sequence), so ROUGE on
    these texts is OU's. The prompt is `prompt + " "`, what OU builds with the export's template tags;
    a whitespace tokenizer encodes it as the prompt alone.
    """
    if max_new_tokens < 1:
        raise ValueError(f"`max_new_tokens` must be >= 1, got {max_new_tokens}")
    prompt_ids = tokenizer([f"{prompt} " for prompt in prompts], add_special_tokens=False).input_ids
    pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    texts = []
    try:
        for start in range(0, len(prompt_ids), batch_size):
            rows = prompt_ids[start : start + batch_size]
            width = max(len(row) for row in rows)
            input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
            for i, row in enumerate(rows):  # left padding: every prompt ends where generation starts
                input_ids[i, width - len(row) :] = torch.tensor(row)
                attention_mask[i, width - len(row) :] = 1
            output = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention_mask.to(device),
                do_sample=False,
                max_new_tokens=max_new_tokens,
                eos_token_id=eos_id,
                pad_token_id=pad_id,
            )
            # Finished sequences are padded after their <eos>; decoding skips both.
            texts += [text.strip() for text in tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)]
    finally:
        model.train(was_training)
    return texts
