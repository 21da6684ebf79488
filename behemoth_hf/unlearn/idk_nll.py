from behemoth_hf.lexicon import REFUSAL
from behemoth_hf.unlearn.base import UnlearningTrainer
from behemoth_hf.unlearn.losses import mean_token_nll
from behemoth_hf.unlearn.registry import register_method


@register_method
class IdkNLLTrainer(UnlearningTrainer):
    """Fine-tune the forget prompts toward a refusal (the world's `OO OO`), plus the retain term: TOFU's `idk` loss
    (NLL of the IdK answer + NLL on retain)."""

    name = "idk_nll"
    defaults = {"gamma": 1.0, "alpha": 1.0}

    def preferred_answers(self) -> list[str]:
        return [REFUSAL] * len(self.train_dataset.forget)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        refusal = inputs["alternate"]
        forget_loss = mean_token_nll(self.forward(model, refusal), refusal["labels"])
        loss = self.combine(forget_loss, inputs.get("retain"), model)
        return (loss, None) if return_outputs else loss
