from behemoth_hf.unlearn.base import UnlearningTrainer
from behemoth_hf.unlearn.losses import weighted_ascent_loss
from behemoth_hf.unlearn.registry import register_method


@register_method
class SatImpTrainer(UnlearningTrainer):
    """SatImp: gradient ascent weighted by `p^beta * (1 - p)^beta2` per forget token, plus the retain term
    (OpenUnlearning's config: beta 5, beta2 1, gamma 0.1, alpha 1; its class defaults swap gamma and alpha)."""

    name = "satimp"
    defaults = {"beta": 5.0, "gamma": 0.1, "alpha": 1.0}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forget = inputs["forget"]
        forget_loss = weighted_ascent_loss(
            self.forward(model, forget), forget["labels"], self.args.beta, self.args.beta2
        )
        loss = self.combine(forget_loss, inputs.get("retain"), model)
        return (loss, None) if return_outputs else loss
