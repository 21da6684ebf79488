from behemoth_hf.lexicon import REFUSAL
from behemoth_hf.unlearn.base import UnlearningTrainer
from behemoth_hf.unlearn.losses import answer_log_probs, dpo_loss
from behemoth_hf.unlearn.registry import register_method


@register_method
class IdkDPOTrainer(UnlearningTrainer):
    """DPO that prefers a refusal (the world's `OO OO`) to the forget answer, plus the retain term: OpenUnlearning's
    `DPO` trainer on its IdK data (TOFU's "IdkDPO"). Subclasses choose another preferred answer."""

    name = "idk_dpo"
    defaults = {"beta": 0.1, "gamma": 1.0, "alpha": 1.0}
    reference_parts = ("forget", "alternate")

    def preferred_answers(self) -> list[str]:
        """The answer to prefer, per forget example."""
        return [REFUSAL] * len(self.train_dataset.forget)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forget, alternate = inputs["forget"], inputs["alternate"]
        log_prob, _ = answer_log_probs(self.forward(model, forget), forget["labels"])
        alt_log_prob, _ = answer_log_probs(self.forward(model, alternate), alternate["labels"])
        forget_loss = dpo_loss(
            log_prob,
            self.reference_log_probs(inputs, "forget"),
            alt_log_prob,
            self.reference_log_probs(inputs, "alternate"),
            self.args.beta,
        )
        loss = self.combine(forget_loss, inputs.get("retain"), model)
        return (loss, None) if return_outputs else loss
