"""`UnlearningArguments`: the `TrainingArguments` of every unlearning/editing method, plus its hyper-parameters
and the update restriction. Parsed by `HfArgumentParser` from `trainer_configs/*.yaml`, flags and `--set`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from transformers import TrainingArguments

from behemoth_hf.unlearn.restriction import BLOCK_CHOICES, LORA_TARGET_CHOICES


@dataclass
class UnlearningArguments(TrainingArguments):
    """Arguments of `behemoth unlearn` / `behemoth edit`.

    > Parameters that choose the model, data and method

    Args:
        model (`str`):
            Folder of the pretrained model (e.g. from `behemoth pretrain`).
        dataset (`str`):
            The model's dataset: a `behemoth generate` folder or a named config.
        method (`str`, defaults to `"npo"`):
            Registered method: `gradient_ascent`, `grad_diff`, `npo`, `simnpo`, `idk_dpo`, `idk_nll`, `altpo`, `rmu`,
            `undial`, `wga`, `satimp`, `ceu`, `pdu` or `edit`.
        forget_split (`str`, defaults to `"forget"`):
            Facts to unlearn (or to edit).
        retain_split (`str`, defaults to `"retain"`):
            Facts whose likelihood the retain term preserves.
        num_edits (`int`, *optional*):
            Use only this many facts of `forget_split` (a seeded choice); None uses them all.
        num_requests (`int`, defaults to 1):
            Split the forget facts into this many subject-disjoint deletion requests (a fixed split per world)...
        request (`int`, defaults to 1):
            ... and unlearn only request number `request` (1-based); `behemoth sequential` runs them in turn.

    > Parameters of the losses (None: the method's OpenUnlearning default)

        alpha (`float`, *optional*):
            Weight of the retain term.
        gamma (`float`, *optional*):
            Weight of the forget term.
        beta (`float`, *optional*):
            Inverse temperature of NPO / SimNPO / DPO / AltPO, UNDIAL's logit penalty, WGA's and SatImp's exponent
            of the token probability.
        beta2 (`float`, defaults to 1.0):
            SatImp's exponent of one minus the token probability.
        delta (`float`, *optional*):
            SimNPO margin.
        retain_loss (`str`, defaults to `"nll"`):
            `nll` on the retain answers, `kl` to the frozen reference model, or (RMU only) `embed_diff`: the
            distance of the steered layer's activations on retain inputs to the reference model's.
        kl_answer_only (`bool`, defaults to `False`):
            Average the KL over answer positions only (OpenUnlearning averages over every position).
        aligned_positions (`bool`, defaults to `False`):
            UNDIAL, PDU and RMU use the positions that predict the answer tokens. By default they use
            OpenUnlearning's: UNDIAL every position, PDU and RMU the positions of the answer tokens themselves
            (so a one-token answer's own prediction is never scored).
        steering_coeff (`float`, defaults to 2.0):
            RMU: norm of the fixed random vector the forget activations are steered to.
        rmu_layer (`int`, *optional*):
            RMU: the decoder layer whose output is steered; None: the middle one, `(num_layers - 1) // 2`.
        rmu_params (`str`, *optional*):
            RMU: train only the parameters whose full name matches this regular expression (OpenUnlearning's
            `trainable_params_regex`); None trains what the update restriction leaves trainable.
        ignore_first_answer_tokens (`int`, defaults to 1):
            CE-U: answer tokens of each example left out of the loss (OpenUnlearning's default 1).
        retain_loss_eps (`float`, *optional*):
            PDU: the bound on the retain loss (required by `pdu`); its dual variable starts at `alpha`.
        dual_step_size (`float`, defaults to 1.0):
            PDU: step of the dual ascent `alpha <- max(0, alpha + dual_step_size * (retain_loss - retain_loss_eps))`.
        dual_warmup_epochs (`float`, defaults to 0.0):
            PDU: epochs before the dual variable starts moving.
        edit_target (`str`, defaults to `"target_new"`):
            What `edit` writes: each fact's `target_new`, or `constant` (object `constant_object` of the fact's
            relation for every fact, the original generator's forget-a-relation mode).
        constant_object (`int`, defaults to 0):
            Object index used by `edit_target=constant`.
        example_form (`str`, defaults to `"prompt"`):
            Wording of the forget and retain examples: the statement `prompt` or the Q/A `question` (the original
            generator's `qa` fine-tuning mode, which writes its retain data as questions too).

    > Parameters of the update restriction

        lora_rank (`int`, *optional*):
            Train rank-k LoRA adapters instead of the weights (merged into the saved model).
        lora_alpha (`float`, *optional*):
            LoRA scaling numerator; None means 2 x rank.
        lora_targets (`str`, defaults to `"all"`):
            Blocks that get adapters: `attention`, `mlp` or `all`.
        trainable_blocks (`str`, defaults to `"all"`):
            Without LoRA, train only these blocks: `all`, `mlp`, `attention`, `mlp+attention`.
        trainable_layers (`str`, *optional*):
            Restrict the blocks (or LoRA adapters) to these layers: "1", "0-2", "0,3".

    > [!NOTE]
    > House defaults that differ from `TrainingArguments`: `seed=0` (as every `behemoth` command),
    > `learning_rate=1e-4`, `num_train_epochs=5`, `per_device_train_batch_size=32`, `lr_scheduler_type="constant"`,
    > `logging_steps=10`, `save_strategy="no"`, `remove_unused_columns=False` (batches are nested forget/retain
    > dicts). `seed` also initialises the LoRA adapters, so a run is reproducible from it. `run_name` labels the
    > progress bar (default: the method, its LoRA rank and its request).
    """

    model: str | None = field(default=None, metadata={"help": "folder of the pretrained model"})
    dataset: str | None = field(default=None, metadata={"help": "the model's dataset: folder or named config"})
    method: str = field(default="npo", metadata={"help": "a registered method (see `behemoth unlearn --help`)"})
    forget_split: str = field(default="forget", metadata={"help": "facts to unlearn or edit"})
    retain_split: str = field(default="retain", metadata={"help": "facts the retain term preserves"})
    num_edits: int | None = field(default=None, metadata={"help": "use only this many forget facts (seeded)"})
    num_requests: int = field(default=1, metadata={"help": "split the forget facts into this many requests"})
    request: int = field(default=1, metadata={"help": "which request (1-based) this run unlearns"})
    alpha: float | None = field(default=None, metadata={"help": "retain weight (None: method default)"})
    gamma: float | None = field(default=None, metadata={"help": "forget weight (None: method default)"})
    beta: float | None = field(default=None, metadata={"help": "inverse temperature / penalty / exponent"})
    beta2: float = field(default=1.0, metadata={"help": "SatImp exponent of 1 - p"})
    delta: float | None = field(default=None, metadata={"help": "SimNPO margin"})
    retain_loss: Literal["nll", "kl", "embed_diff"] = field(
        default="nll", metadata={"help": "retain term: nll, kl or (rmu) embed_diff"}
    )
    kl_answer_only: bool = field(default=False, metadata={"help": "KL over answer positions only"})
    aligned_positions: bool = field(
        default=False, metadata={"help": "UNDIAL/PDU/RMU on the positions that predict the answer"}
    )
    steering_coeff: float = field(default=2.0, metadata={"help": "RMU steering vector norm"})
    rmu_layer: int | None = field(default=None, metadata={"help": "RMU layer (None: the middle one)"})
    rmu_params: str | None = field(default=None, metadata={"help": "RMU: regex of the parameters to train"})
    ignore_first_answer_tokens: int = field(default=1, metadata={"help": "CE-U: answer tokens left out"})
    retain_loss_eps: float | None = field(default=None, metadata={"help": "PDU retain loss bound (required)"})
    dual_step_size: float = field(default=1.0, metadata={"help": "PDU dual ascent step"})
    dual_warmup_epochs: float = field(default=0.0, metadata={"help": "PDU epochs before dual updates"})
    edit_target: Literal["target_new", "constant"] = field(
        default="target_new", metadata={"help": "edit toward target_new, or a constant object per relation"}
    )
    constant_object: int = field(default=0, metadata={"help": "object index for edit_target=constant"})
    example_form: Literal["prompt", "question"] = field(
        default="prompt", metadata={"help": "train on the statement prompts or the Q/A questions"}
    )
    lora_rank: int | None = field(default=None, metadata={"help": "train rank-k LoRA adapters instead"})
    lora_alpha: float | None = field(default=None, metadata={"help": "LoRA alpha (None: 2 x rank)"})
    lora_targets: str = field(default="all", metadata={"help": "LoRA blocks: attention, mlp or all"})
    trainable_blocks: str = field(default="all", metadata={"help": "all, mlp, attention or mlp+attention"})
    trainable_layers: str | None = field(default=None, metadata={"help": "layers: '1', '0-2' or '0,3'"})

    output_dir: str | None = field(
        default=None, metadata={"help": "where the unlearned model and its record go", "aliases": ["--output"]}
    )
    overwrite: bool = field(default=False, metadata={"help": "replace a finished output_dir of this command"})
    seed: int = field(default=0, metadata={"help": "seed of data order, retain pairs, num_edits choice, LoRA init"})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate"})
    num_train_epochs: float = field(default=5.0, metadata={"help": "epochs over the forget set"})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "forget facts per device per step"})
    lr_scheduler_type: str = field(default="constant", metadata={"help": "transformers scheduler name"})
    logging_steps: float = field(default=10, metadata={"help": "log every this many steps"})
    save_strategy: str = field(default="no", metadata={"help": "checkpointing strategy"})
    remove_unused_columns: bool = field(default=False, metadata={"help": "must stay False (nested batches)"})

    def __post_init__(self):
        # Checked before TrainingArguments fills in its own default output_dir.
        for name in ("model", "dataset", "output_dir"):
            if getattr(self, name) is None:
                raise ValueError(f"`{name}` is required (--{name.replace('_', '-')})")
        super().__post_init__()
        from behemoth_hf.unlearn.registry import METHODS  # late: the trainers import this module

        if self.method not in METHODS:
            raise ValueError(f"`method` must be one of {sorted(METHODS)}, got {self.method!r}")
        for name, value in METHODS[self.method].defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        for name in ("alpha", "gamma"):
            if getattr(self, name) is not None and getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)}")
        if self.beta is not None and self.beta <= 0:
            raise ValueError(f"`beta` must be > 0, got {self.beta}")
        self._check_method_arguments()
        if self.num_edits is not None and self.num_edits < 1:
            raise ValueError(f"`num_edits` must be >= 1 or None, got {self.num_edits}")
        if self.num_requests < 1:
            raise ValueError(f"`num_requests` must be >= 1, got {self.num_requests}")
        if not 1 <= self.request <= self.num_requests:
            raise ValueError(f"`request` must be in [1, num_requests={self.num_requests}], got {self.request}")
        if self.lora_rank is not None and self.lora_rank < 1:
            raise ValueError(f"`lora_rank` must be >= 1 (or None for full updates), got {self.lora_rank}")
        if self.lora_targets not in LORA_TARGET_CHOICES:
            raise ValueError(f"`lora_targets` must be one of {list(LORA_TARGET_CHOICES)}, got {self.lora_targets!r}")
        if self.trainable_blocks not in BLOCK_CHOICES:
            raise ValueError(f"`trainable_blocks` must be one of {list(BLOCK_CHOICES)}, got {self.trainable_blocks!r}")
        if self.lora_rank is not None and self.trainable_blocks != "all":
            raise ValueError("`trainable_blocks` restricts full updates; with `lora_rank` choose `lora_targets`")
        if isinstance(self.trainable_layers, int) and not isinstance(self.trainable_layers, bool):
            self.trainable_layers = str(self.trainable_layers)  # YAML reads `trainable_layers: 1` as an int
        if self.lora_rank is not None and self.lora_alpha is None:
            self.lora_alpha = 2.0 * self.lora_rank
        if self.remove_unused_columns:
            raise ValueError("`remove_unused_columns` must be False: batches are nested forget/retain dicts")
        if self.example_form not in ("prompt", "question"):
            raise ValueError(f"`example_form` must be one of ['prompt', 'question'], got {self.example_form!r}")

    def _check_method_arguments(self) -> None:
        for name in ("beta2", "steering_coeff", "ignore_first_answer_tokens", "dual_step_size", "dual_warmup_epochs"):
            if getattr(self, name) < 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)}")
        if self.retain_loss == "embed_diff" and self.method != "rmu":
            raise ValueError(
                f"`retain_loss=embed_diff` compares RMU's steered activations: use it with `rmu`, not {self.method!r}"
            )
        if self.method == "pdu" and self.retain_loss_eps is None:
            raise ValueError("`pdu` needs `retain_loss_eps`, the bound its dual ascent holds the retain loss to")
        if self.method == "pdu" and not self.alpha > 0:
            raise ValueError(f"`pdu` starts its dual variable at `alpha`, which must be > 0 here, got {self.alpha}")
        if self.rmu_layer is not None and self.rmu_layer < 0:
            raise ValueError(f"`rmu_layer` must be >= 0 (or None for the middle layer), got {self.rmu_layer}")
        if self.rmu_params is not None:
            try:
                re.compile(self.rmu_params)
            except re.error as error:
                raise ValueError(f"`rmu_params` is not a regular expression ({error}): {self.rmu_params!r}") from None
            # Two ways to choose what trains: one selection, stated once, is what the record can name.
            if self.lora_rank is not None or self.trainable_blocks != "all" or self.trainable_layers is not None:
                raise ValueError(
                    "`rmu_params` chooses the trained parameters itself: leave `lora_rank`, `trainable_blocks` and "
                    "`trainable_layers` unset with it (or drop `rmu_params` to restrict RMU with them)"
                )
