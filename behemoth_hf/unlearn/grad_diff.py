from behemoth_hf.unlearn.base import UnlearningTrainer
from behemoth_hf.unlearn.losses import gradient_ascent_loss, mean_token_nll
from behemoth_hf.unlearn.registry import register_method


@register_method
class GradDiffTrainer(UnlearningTrainer):
    """Gradient difference: `gamma * (-CE_f) + alpha * retain` (retain = NLL, or KL to the reference)."""

    name = "grad_diff"
    defaults = {"gamma": 1.0, "alpha": 1.0}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forget = inputs["forget"]
        forget_loss = gradient_ascent_loss(mean_token_nll(self.forward(model, forget), forget["labels"]))
        loss = self.combine(forget_loss, inputs.get("retain"), model)
        return (loss, None) if return_outputs else loss
