import torch

from behemoth_hf.unlearn.base import UnlearningTrainer
from behemoth_hf.unlearn.losses import undial_loss
from behemoth_hf.unlearn.registry import register_method


@register_method
class UNDIALTrainer(UnlearningTrainer):
    """UNDIAL: self-distillation toward the frozen model with the forget answer's logits lowered by `beta`
    (OpenUnlearning defaults: beta 10, no retain term)."""

    name = "undial"
    defaults = {"beta": 10.0, "gamma": 1.0, "alpha": 0.0}
    needs_reference = True

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forget = inputs["forget"]
        with torch.no_grad():
            ref_logits = self.forward(self.ref_model, forget)
        forget_loss = undial_loss(
            self.forward(model, forget), ref_logits, forget["labels"], self.args.beta, self.args.aligned_positions
        )
        loss = self.combine(forget_loss, inputs.get("retain"), model)
        return (loss, None) if return_outputs else loss
