"""`UnlearningTrainer`: a `transformers.Trainer` that consumes paired forget/retain batches.

Subclasses are one method each and implement only `compute_loss`; this class holds what they share:
the retain term; the reference, i.e. the frozen starting model: the answer log-probabilities a method compares
against, computed once before training, and the model itself only where a loss needs its full logits at every step
(`retain_loss=kl`); batches that split each step's examples across processes; logging of the loss components next
to the total, and a progress bar that names the run.
"""

from __future__ import annotations

import copy
from collections import defaultdict
from typing import Any, ClassVar

import torch
from accelerate.utils import broadcast
from torch.utils.data import DataLoader, RandomSampler
from transformers import ProgressCallback, Trainer

from behemoth_hf.unlearn.alternates import AlternateDataset
from behemoth_hf.unlearn.data import GlobalBatchSampler
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
    # Parts of a training item ("forget", or one a method adds, e.g. an alternative answer) whose summed answer
    # log-probabilities under the starting model the loss compares against. That model is frozen and runs in eval
    # mode, so they are computed once, before training, and looked up per batch by example index
    # (`reference_log_probs`): a step costs no reference forward pass.
    reference_parts: ClassVar[tuple[str, ...]] = ()
    # The loss needs the frozen starting model's full logits at every step (as `retain_loss=kl` does).
    needs_reference: ClassVar[bool] = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        kl_retain = self.uses_retain and self.args.retain_loss == "kl" and self.args.alpha > 0
        self.ref_model = self._reference_model() if self.needs_reference or kl_retain else None
        answers = self.preferred_answers()
        if answers is not None:
            self.train_dataset = AlternateDataset(self.train_dataset, self.processing_class, answers)
        self._reference_cache = self._reference_answer_log_probs() if self.reference_parts else {}
        self._loss_parts: dict[str, list[float]] = defaultdict(list)
        # Swap in the labelled bar (none to swap with `disable_tqdm`, which prints logs, or in a notebook).
        if self.pop_callback(ProgressCallback) is not None:
            self.add_callback(LabelledProgressCallback(self.args.run_name or self.run_label()))

    def preferred_answers(self) -> list[str] | None:
        """Per forget example, the answer a refusal/preference method trains toward (batches then hold it as the
        `alternate` part); None for methods without one. Runs before the reference log-probs are computed."""
        return None

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

    def _reference_answer_log_probs(self) -> dict[str, torch.Tensor]:
        """Summed answer log-probs of `reference_parts` of every training example under the starting model, as
        (num_examples,) tensors in index order. Built before any update, from the model being trained (LoRA adapters
        start at zero, so a peft model still computes the starting model)."""
        dataset, model, size = self.train_dataset, self.model, self.args.per_device_train_batch_size
        chunks: dict[str, list[torch.Tensor]] = {part: [] for part in self.reference_parts}
        training = model.training
        model.eval()
        with torch.no_grad():
            for start in range(0, len(dataset), size):
                items = [dataset[i] for i in range(start, min(start + size, len(dataset)))]
                batch = self._prepare_inputs(self.data_collator(items))
                for part in self.reference_parts:
                    chunks[part].append(answer_log_probs(self.forward(model, batch[part]), batch[part]["labels"])[0])
        model.train(training)
        # Every process computed the same numbers from the same weights; process zero's copy makes them identical
        # bit for bit whatever each device's rounding.
        return {part: broadcast(torch.cat(values), from_process=0) for part, values in chunks.items()}

    def get_train_dataloader(self) -> DataLoader:
        """The Trainer's shuffled loader, with each step's examples those of a one-process step of the global batch
        (`GlobalBatchSampler`): under several processes every example is seen once per epoch."""
        batches = GlobalBatchSampler(
            RandomSampler(self.train_dataset),  # accelerate swaps in its seedable sampler: same order everywhere
            self.args.per_device_train_batch_size,
            self.accelerator.num_processes,
            drop_last=self.args.dataloader_drop_last,
        )
        loader = DataLoader(
            self.train_dataset,
            batch_sampler=batches,
            collate_fn=self.data_collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
            persistent_workers=self.args.dataloader_persistent_workers,
            prefetch_factor=self.args.dataloader_prefetch_factor,
        )
        return self.accelerator.prepare(loader)

    # -------------------------------------------------------------- pieces shared by the methods
    @staticmethod
    def forward(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits

    def reference_log_probs(self, inputs: dict[str, Any], part: str = "forget") -> torch.Tensor:
        """The starting model's summed answer log-probs of `part` of this batch's examples, (B,): looked up by the
        batch's `index` in what was computed before training (`part` must be one of `reference_parts`)."""
        if part not in self._reference_cache:
            raise ValueError(f"{type(self).__name__}.reference_parts {self.reference_parts} does not name {part!r}")
        return self._reference_cache[part][inputs["index"]]

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
