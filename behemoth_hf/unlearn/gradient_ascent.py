from behemoth_hf.unlearn.base import UnlearningTrainer
from behemoth_hf.unlearn.losses import gradient_ascent_loss, mean_token_nll
from behemoth_hf.unlearn.registry import register_method


@register_method
class GradientAscentTrainer(UnlearningTrainer):
    """Gradient ascent on the forget answers: minimises `-CE_f` (no retain term, as in OpenUnlearning)."""

    name = "gradient_ascent"
    uses_retain = False

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forget = inputs["forget"]
        loss = gradient_ascent_loss(mean_token_nll(self.forward(model, forget), forget["labels"]))
        self.record(forget_loss=loss)
        return (loss, None) if return_outputs else loss
