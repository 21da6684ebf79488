from behemoth_hf.unlearn.base import UnlearningTrainer
from behemoth_hf.unlearn.losses import answer_log_probs, npo_loss
from behemoth_hf.unlearn.registry import register_method


@register_method
class NPOTrainer(UnlearningTrainer):
    """Negative Preference Optimization against the frozen starting model, plus the retain term."""

    name = "npo"
    defaults = {"beta": 0.1, "gamma": 1.0, "alpha": 1.0}
    reference_parts = ("forget",)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forget = inputs["forget"]
        log_prob, _ = answer_log_probs(self.forward(model, forget), forget["labels"])
        forget_loss = npo_loss(log_prob, self.reference_log_probs(inputs), self.args.beta)
        loss = self.combine(forget_loss, inputs.get("retain"), model)
        return (loss, None) if return_outputs else loss
