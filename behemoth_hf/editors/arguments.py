"""`EditorArguments`: what `behemoth edit --method rome|memit|alphaedit` parses (YAML, flags, `--set`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


EDITOR_CHOICES = ("rome", "memit", "alphaedit")
EDIT_TOKENS = ("subject_last", "last")


@dataclass
class EditorArguments:
    """Arguments of the locate-then-edit methods of `behemoth edit`.

    > Parameters that choose the model, data and method

    Args:
        model (`str`):
            Folder of the pretrained model (e.g. from `behemoth pretrain`).
        dataset (`str`):
            The model's dataset: a `behemoth generate` folder or a named config.
        output_dir (`str`):
            Where the edited model and its record go.
        method (`str`, defaults to `"rome"`):
            `rome` (one rank-one update per subject, one layer), `memit` (all edits at once over a range of layers)
            or `alphaedit` (MEMIT projected onto the null space of the corpus keys).
        layers (`str`, *optional*):
            Layers to edit: "0", "0-2" or "0,3" (ROME takes exactly one). None: ROME edits layer
            `(num_layers - 1) // 3`, MEMIT and AlphaEdit the first half `0 .. ceil(num_layers / 2) - 1`
            (`behemoth trace` shows where a model keeps its facts).
        forget_split (`str`, defaults to `"forget"`):
            The facts to edit, each toward its `target_new`.
        num_edits (`int`, *optional*):
            Edit only this many facts of `forget_split` (a seeded choice); None edits them all.
        facts_per_subject (`int`, *optional*):
            Then keep at most this many facts of each subject (a seeded choice). ROME and MEMIT key an edit on its
            subject, so one subject's edits share one value; `1` gives CounterFact's setting, one fact per subject.
        edit_token (`str`, defaults to `"subject_last"`):
            Where the edit is keyed and written (EasyEdit's `fact_token`): `subject_last`, the subject's last token
            (ROME's and MEMIT's choice: one key per subject, shared by its edits), or `last`, the prompt's last
            token (one key per fact; the value is read where the answer is predicted).
        num_requests (`int`, defaults to 1):
            Split the facts into this many subject-disjoint requests (the split `behemoth unlearn` uses) ...
        request (`int`, defaults to 1):
            ... and edit only request number `request` (1-based).
        seed (`int`, defaults to 0):
            Seed of the `num_edits` choice.

    > Parameters of the value optimisation (ROME's `compute_v`)

        value_steps (`int`, defaults to 25):
            Adam steps on the value `delta` per subject (ROME: 20, MEMIT: 25).
        value_learning_rate (`float`, defaults to 0.5):
            Adam learning rate of `delta` (ROME and MEMIT: 0.5).
        kl_factor (`float`, defaults to 0.0625):
            Weight of the essence term: KL to the original model on the subject's facts outside the request.
        value_weight_decay (`float`, defaults to 0.5):
            Weight of ROME's decay term `|delta| / |original MLP output|^2` (ROME and MEMIT on GPT-2 XL: 0.5).
        clamp_norm_factor (`float`, defaults to 4.0):
            `|delta|` is kept at most this times the original MLP output's norm (ROME: 4, MEMIT: 0.75).

    > Parameters of the update

        covariance_rows (`int`, defaults to 5000):
            Train sentences whose keys estimate the covariance `C` (every token; cached per model and layer).
        covariance_ridge (`float`, defaults to 0.01):
            ROME and MEMIT solve with `C + ridge * mean(diag C) * I`: a small world's keys span few directions, so
            `C` is singular (measured: half of the 1,024 eigenvalues of `small`'s layer 0 below 1e-4).
        covariance_weight (`float`, defaults to 100.0):
            MEMIT's `lambda` (`mom2_update_weight`): weight of `C` against the edits' keys. The paper's 15,000
            (GPT-J) blocks every edit of the `small` model; 100 edits 40 subjects with reliability 1.0.
        nullspace_threshold (`float`, defaults to 0.01):
            AlphaEdit: eigenvalues of `C` below this span the null space the update is projected on.
        context_prefixes (`int`, defaults to 5):
            Subject-free sentence beginnings of the world the key is averaged over (the distinct ones, at most).
        batch_size (`int`, defaults to 256):
            Sentences per forward pass of the covariance estimate.
        overwrite (`bool`, defaults to `False`):
            Replace a finished `output_dir` of `behemoth edit`/`unlearn`.
    """

    model: str | None = field(default=None, metadata={"help": "folder of the pretrained model"})
    dataset: str | None = field(default=None, metadata={"help": "the model's dataset: folder or named config"})
    output_dir: str | None = field(
        default=None, metadata={"help": "where the edited model and its record go", "aliases": ["--output"]}
    )
    method: Literal["rome", "memit", "alphaedit"] = field(
        default="rome", metadata={"help": "rome, memit or alphaedit"}
    )
    layers: str | None = field(default=None, metadata={"help": "layers to edit: '0', '0-2' or '0,3'"})
    forget_split: str = field(default="forget", metadata={"help": "facts to edit toward target_new"})
    num_edits: int | None = field(default=None, metadata={"help": "edit only this many facts (seeded)"})
    facts_per_subject: int | None = field(default=None, metadata={"help": "keep at most this many facts per subject"})
    edit_token: Literal["subject_last", "last"] = field(
        default="subject_last", metadata={"help": "key and write at the subject's last token or the prompt's last"}
    )
    num_requests: int = field(default=1, metadata={"help": "split the facts into this many requests"})
    request: int = field(default=1, metadata={"help": "which request (1-based) to edit"})
    seed: int = field(default=0, metadata={"help": "seed of the num_edits choice"})
    value_steps: int = field(default=25, metadata={"help": "Adam steps on each value delta"})
    value_learning_rate: float = field(default=0.5, metadata={"help": "Adam learning rate of the value delta"})
    kl_factor: float = field(default=0.0625, metadata={"help": "weight of the essence KL term"})
    value_weight_decay: float = field(default=0.5, metadata={"help": "weight of the delta norm penalty"})
    clamp_norm_factor: float = field(default=4.0, metadata={"help": "max |delta| / |original MLP output|"})
    covariance_rows: int = field(default=5000, metadata={"help": "train sentences of the key covariance"})
    covariance_ridge: float = field(default=1e-2, metadata={"help": "ridge added to C, relative to its mean diagonal"})
    covariance_weight: float = field(default=100.0, metadata={"help": "MEMIT lambda (mom2_update_weight)"})
    nullspace_threshold: float = field(default=1e-2, metadata={"help": "AlphaEdit null-space eigenvalue threshold"})
    context_prefixes: int = field(default=5, metadata={"help": "sentence beginnings the key is averaged over"})
    batch_size: int = field(default=256, metadata={"help": "sentences per forward pass (covariance)"})
    overwrite: bool = field(default=False, metadata={"help": "replace a finished output_dir"})

    def __post_init__(self):
        for name in ("model", "dataset", "output_dir"):
            if getattr(self, name) is None:
                raise ValueError(f"`{name}` is required (--{name})")
        if self.method not in EDITOR_CHOICES:
            raise ValueError(f"`method` must be one of {list(EDITOR_CHOICES)}, got {self.method!r}")
        if self.edit_token not in EDIT_TOKENS:
            raise ValueError(f"`edit_token` must be one of {list(EDIT_TOKENS)}, got {self.edit_token!r}")
        if isinstance(self.layers, int) and not isinstance(self.layers, bool):
            self.layers = str(self.layers)  # YAML reads `layers: 1` as an int
        positive = ("value_steps", "covariance_rows", "context_prefixes", "batch_size", "num_requests")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        for name in ("value_learning_rate", "clamp_norm_factor", "nullspace_threshold"):
            if not getattr(self, name) > 0:
                raise ValueError(f"`{name}` must be > 0, got {getattr(self, name)}")
        for name in ("kl_factor", "value_weight_decay", "covariance_weight", "covariance_ridge"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"`{name}` must be >= 0, got {getattr(self, name)}")
        for name in ("num_edits", "facts_per_subject"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1 or None, got {getattr(self, name)}")
        if not 1 <= self.request <= self.num_requests:
            raise ValueError(f"`request` must be in [1, num_requests={self.num_requests}], got {self.request}")
