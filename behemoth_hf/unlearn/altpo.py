from __future__ import annotations

import torch

from behemoth_hf.unlearn.alternates import prompt_length
from behemoth_hf.unlearn.dpo import IdkDPOTrainer
from behemoth_hf.unlearn.registry import register_method


@torch.no_grad()
def greedy_alternates(model, examples: list[dict[str, list[int]]], banned_ids: list[int]) -> list[list[int]]:
    """The model's own alternative answer to each example's prompt, as token ids.

    Its first token is the model's most likely next token other than the answer's first token and `banned_ids`
    (the special tokens); greedy decoding then continues it until it produces a special token (`<eos>`) or is as
    long as the answer. So an alternate never starts like the fact's answer, and is what the model itself finds
    most plausible after it: AltPO's "plausible alternative answers" (https://arxiv.org/abs/2409.13474, generated
    there by prompting the model; peers.md section 1.3), made from the model alone as our world has no instructions.
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        alternates = []
        for example in examples:
            start = prompt_length(example)
            answer = example["input_ids"][start:-1]  # without the <eos> that ends every example
            ids = example["input_ids"][:start]
            logits = model(input_ids=torch.tensor([ids], device=device)).logits[0, -1]
            logits[[answer[0], *banned_ids]] = float("-inf")
            alternate = [int(logits.argmax())]
            while len(alternate) < len(answer):
                token = int(model(input_ids=torch.tensor([ids + alternate], device=device)).logits[0, -1].argmax())
                if token in banned_ids:
                    break
                alternate.append(token)
            alternates.append(alternate)
        return alternates
    finally:
        model.train(was_training)


@register_method
class AltPOTrainer(IdkDPOTrainer):
    """Alternate Preference Optimization: DPO that prefers the starting model's own alternative answer
    (`greedy_alternates`) to the forget answer, plus the retain term (OpenUnlearning's community AltPO)."""

    name = "altpo"

    def preferred_answers(self) -> list[str]:
        tokenizer = self.processing_class
        alternates = greedy_alternates(self.model, self.train_dataset.forget, tokenizer.all_special_ids)
        return tokenizer.batch_decode(alternates)
