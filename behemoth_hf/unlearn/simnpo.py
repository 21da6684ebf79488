from behemoth_hf.unlearn.base import UnlearningTrainer
from behemoth_hf.unlearn.losses import answer_log_probs, simnpo_loss
from behemoth_hf.unlearn.registry import register_method


@register_method
class SimNPOTrainer(UnlearningTrainer):
    """SimNPO: NPO with the length-normalised NLL in place of the reference ratio (no reference model)."""

    name = "simnpo"
    defaults = {"beta": 4.5, "delta": 0.0, "gamma": 0.125, "alpha": 1.0}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forget = inputs["forget"]
        log_prob, num_tokens = answer_log_probs(self.forward(model, forget), forget["labels"])
        forget_loss = simnpo_loss(log_prob, num_tokens, self.args.beta, self.args.delta)
        loss = self.combine(forget_loss, inputs.get("retain"), model)
        return (loss, None) if return_outputs else loss
