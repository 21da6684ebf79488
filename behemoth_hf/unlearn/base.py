"""`UnlearningTrainer`: a `transformers.Trainer` that consumes paired forget/retain batches.

Subclasses are one method each and implement only `compute_loss`; this class holds what they share:
the retain term, the frozen reference model (built only when a method or `retain_loss=kl` needs it),
logging of the loss components next to the total, and a progress bar that names the run.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import ClassVar

import torch
from transformers import ProgressCallback, Trainer

from behemoth_hf.unlearn.losses import answer_log_probs, kl_retain_loss, mean_token_nll


class LabelledProgressCallback(ProgressCallback):
    """The Trainer's progress bar with a label: the runs of a sequence or an experiment otherwise look alike."""

    def __init__(self, label: str):
        super().__init__()
        self.label = label

    def on_train_begin(self, args, state, control, **kwargs):
        super().on_train_begin(args, state, control, **kwargs)
        if self.training_bar is not None:  # None on processes other than the main one
            self.training_bar.set_description(self.label)


class UnlearningTrainer(Trainer):
    name: ClassVar[str]
    defaults: ClassVar[dict[str, float]] = {}  # OpenUnlearning's defaults for alpha/gamma/beta/delta
    uses_retain: ClassVar[bool] = True
    needs_reference: ClassVar[bool] = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        needs_reference = self.needs_reference or (self.uses_retain and self.args.retain_loss == "kl")
        self.ref_model = self._reference_model() if needs_reference else None
        self._loss_parts: dict[str, list[float]] = defaultdict(list)
        # Swap in the labelled bar (none to swap with `disable_tqdm`, which prints logs, or in a notebook).
        if self.pop_callback(ProgressCallback) is not None:
            self.add_callback(LabelledProgressCallback(self.args.run_name or self.run_label()))

    def run_label(self) -> str:
        """`npo`, `edit LoRA r4`, `npo request 2/4`: the method, its LoRA rank and its deletion request."""
        label = self.name
        if self.args.lora_rank is not None:
            label += f" LoRA r{self.args.lora_rank}"
        if self.args.num_requests > 1:
            label += f" request {self.args.request}/{self.args.num_requests}"
        return label

    def _reference_model(self):
        # A frozen copy of the starting point (LoRA adapters start at zero, so a peft copy is too).
        reference = copy.deepcopy(self.model).eval()
        reference.requires_grad_(False)
        return self.accelerator.prepare_model(reference, evaluation_mode=True)

    # -------------------------------------------------------------- pieces shared by the methods
    @staticmethod
    def forward(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    def reference_log_probs(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.no_grad():
            return answer_log_probs(self.forward(self.ref_model, batch), batch["labels"])[0]

    def retain_loss(self, model, retain: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = self.forward(model, retain)
        if self.args.retain_loss == "nll":
            return mean_token_nll(logits, retain["labels"])
        with torch.no_grad():
            ref_logits = self.forward(self.ref_model, retain)
        return kl_retain_loss(logits, ref_logits, retain["labels"] if self.args.kl_answer_only else None)

    def combine(self, forget_loss: torch.Tensor, retain: dict[str, torch.Tensor] | None, model) -> torch.Tensor:
        """`gamma * forget_loss + alpha * retain_loss` (the retain term skipped when alpha is 0)."""
        loss = self.args.gamma * forget_loss
        self.record(forget_loss=forget_loss)
        if retain is not None and self.args.alpha > 0:
            retain_loss = self.retain_loss(model, retain)
            self.record(retain_loss=retain_loss)
            loss = loss + self.args.alpha * retain_loss
        return loss

    # -------------------------------------------------------------- logging
    def record(self, **values: torch.Tensor) -> None:
        for key, value in values.items():
            self._loss_parts[key].append(value.detach().float().item())

    def log(self, logs: dict[str, float], *args, **kwargs) -> None:
        for key, values in self._loss_parts.items():
            logs[key] = sum(values) / len(values)
        self._loss_parts.clear()
        super().log(logs, *args, **kwargs)
