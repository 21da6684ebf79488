import torch

from behemoth_hf.unlearn.base import UnlearningTrainer
from behemoth_hf.unlearn.losses import logit_flattening_loss
from behemoth_hf.unlearn.registry import register_method


@register_method
class PDUTrainer(UnlearningTrainer):
    """Primal-dual unlearning (PDU): flatten the forget answers' distributions while a dual variable, started at
    `alpha`, holds the retain loss under `retain_loss_eps`: `loss = gamma * forget + alpha_t * (retain - eps)`, then
    `alpha_t <- max(0, alpha_t + dual_step_size * (retain - eps))` after every step once `dual_warmup_epochs` have
    passed (OpenUnlearning's `PDU` with `primal_dual` and `dual_update_upon=step`). The dual variable is logged as
    `retain_preference`."""

    name = "pdu"
    defaults = {"gamma": 1.0, "alpha": 1.0}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.retain_preference = self.args.alpha

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forget, retain = inputs["forget"], inputs["retain"]
        forget_loss = logit_flattening_loss(self.forward(model, forget), forget["labels"], self.args.aligned_positions)
        retain_loss = self.retain_loss(model, retain)
        slack = retain_loss - self.args.retain_loss_eps
        loss = self.args.gamma * forget_loss + self.retain_preference * slack
        self.record(
            forget_loss=forget_loss, retain_loss=retain_loss, retain_preference=torch.tensor(self.retain_preference)
        )
        if model.training and (self.state.epoch or 0) >= self.args.dual_warmup_epochs:
            self.retain_preference = max(0.0, self.retain_preference + self.args.dual_step_size * slack.item())
        return (loss, None) if return_outputs else loss
