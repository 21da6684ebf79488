from behemoth_hf.unlearn.base import UnlearningTrainer
from behemoth_hf.unlearn.losses import mean_token_nll
from behemoth_hf.unlearn.registry import register_method


@register_method
class EditTrainer(UnlearningTrainer):
    """Supervised edit: the `forget` part of each batch carries the *new* answers (see `run.py`);
    minimise their NLL, with the retain term keeping other facts in place."""

    name = "edit"
    defaults = {"gamma": 1.0, "alpha": 1.0}

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        edits = inputs["forget"]
        edit_loss = mean_token_nll(self.forward(model, edits), edits["labels"])
        loss = self.combine(edit_loss, inputs.get("retain"), model)
        return (loss, None) if return_outputs else loss
