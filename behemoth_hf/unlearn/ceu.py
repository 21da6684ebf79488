from behemoth_hf.unlearn.base import UnlearningTrainer
from behemoth_hf.unlearn.losses import IGNORE_INDEX, ceu_loss
from behemoth_hf.unlearn.registry import register_method


@register_method
class CEUTrainer(UnlearningTrainer):
    """Cross-entropy unlearning (CE-U): cross-entropy toward the model's own distribution without the forget token,
    skipping the first `ignore_first_answer_tokens` of each answer; no retain term (as OpenUnlearning's `CEU`)."""

    name = "ceu"
    uses_retain = False

    def __init__(self, args, train_dataset, **kwargs):
        # Checked before the Trainer starts (it creates the output folder).
        skip = args.ignore_first_answer_tokens
        shortest = min(sum(label != IGNORE_INDEX for label in ex["labels"]) for ex in train_dataset.forget)
        if skip >= shortest:
            raise ValueError(
                f"`ignore_first_answer_tokens={skip}` leaves nothing to unlearn of the shortest forget answers "
                f"({shortest} labelled tokens with the <eos>): use at most {shortest - 1}"
            )
        super().__init__(args=args, train_dataset=train_dataset, **kwargs)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        forget = inputs["forget"]
        loss = ceu_loss(self.forward(model, forget), forget["labels"], self.args.ignore_first_answer_tokens)
        self.record(forget_loss=loss)
        return (loss, None) if return_outputs else loss
