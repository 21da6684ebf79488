from behemoth_hf.unlearn.base import UnlearningTrainer
from behemoth_hf.unlearn.losses import weighted_ascent_loss
from behemoth_hf.unlearn.registry import register_method


@register_method
class WGATrainer(UnlearningTrainer):
    """Weighted gradient ascent: each forget token's ascent weighted by its probability to the power `beta`
    (OpenUnlearning defaults: beta 1, gamma 1, alpha 1), plus the retain term."""

    name = "wga"
    defaults = {"beta": 1.0, "gamma": 1.0, "alpha": 1.0}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forget = inputs["forget"]
        forget_loss = weighted_ascent_loss(self.forward(model, forget), forget["labels"], self.args.beta)
        loss = self.combine(forget_loss, inputs.get("retain"), model)
        return (loss, None) if return_outputs else loss
