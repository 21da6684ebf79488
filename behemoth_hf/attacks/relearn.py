"""`behemoth attack relearn`: does a little benign fine-tuning bring "forgotten" facts back?

The unlearned model is fine-tuned (plain answer NLL, `transformers.Trainer`) for a few steps on one of
three relearning sets, and the facts it never sees during relearning are scored every `eval_steps`:

- `retain`: the retain facts only (no forget fact is shown at all);
- `forget`: a seeded `forget_fraction` of the forget facts (the rest are scored);
- `subject`: the facts of the forget subjects under one other relation (the first base relation that is
  not `forget_relation`; in a subject-level forget set these are forget facts, in a relation-level one
  retain facts), scoring the forget facts of the other relations.

The retain oracle relearned the same way is the reference: it never knew the scored facts, so whatever it
reaches is what the relearning set teaches by itself (chance, in a world of independent facts).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from accelerate import PartialState
from datasets import concatenate_datasets
from transformers import DataCollatorForSeq2Seq, Trainer, TrainerCallback, TrainingArguments

from behemoth_hf.attacks.targets import AttackTargets
from behemoth_hf.cli import launched_processes
from behemoth_hf.data import BehemothData, load_model, open_dataset
from behemoth_hf.scoring import score_answers
from behemoth_hf.unlearn.data import encode_examples


RELEARN_DATA = ("retain", "forget", "subject")
CURVE_METRICS = ("forget_accuracy", "forget_Q_A_Prob", "retain_accuracy")
# Seed streams of the relearning draws (forget fraction, retain sample), distinct from every other stream.
_FORGET_FRACTION_STREAM, _RETAIN_SAMPLE_STREAM = 31, 32
RETAIN_SAMPLE = 200


@dataclass
class RelearnArguments(AttackTargets):
    """Arguments of `behemoth attack relearn`.

    Args:
        model (`list[str]`):
            Unlearned model folder(s) to attack (may be empty when only the oracle is attacked).
        dataset (`str`):
            Their dataset: a `behemoth generate` folder or a named config.
        output_dir (`str`):
            Where `relearn.json`, `relearn.md` and `relearn.png` go.
        oracle (`str`, *optional*):
            Retain-oracle model folder, relearned the same way as the reference.
        relearn_data (`list[str]`, defaults to all three):
            Relearning sets: `retain`, `forget`, `subject`.
        forget_fraction (`float`, defaults to 0.1):
            Share of the forget facts the `forget` set relearns.
        max_steps (`int`, defaults to 30):
            Fine-tuning steps.
        eval_steps (`int`, defaults to 5):
            Score the held-out forget facts every this many steps (and before the first).
        learning_rate (`float`, defaults to 1e-4):
            AdamW learning rate (constant).
        batch_size (`int`, defaults to 16):
            Relearning examples per step (under several processes, shared equally between them).
        seed (`int`, defaults to 0):
            Seed of the forget-fraction draw and of training.
    """

    relearn_data: list[str] = field(
        default_factory=lambda: list(RELEARN_DATA), metadata={"help": "relearning sets: retain, forget, subject"}
    )
    forget_fraction: float = field(default=0.1, metadata={"help": "share of forget facts relearned by `forget`"})
    max_steps: int = field(default=30, metadata={"help": "fine-tuning steps"})
    eval_steps: int = field(default=5, metadata={"help": "score every this many steps"})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate"})
    batch_size: int = field(default=16, metadata={"help": "examples per step"})
    seed: int = field(default=0, metadata={"help": "seed of the draws and of training"})

    def __post_init__(self):
        if isinstance(self.relearn_data, str):
            self.relearn_data = [self.relearn_data]
        bad = [kind for kind in self.relearn_data if kind not in RELEARN_DATA]
        if not self.relearn_data or bad:
            raise ValueError(f"`relearn_data` must list values from {list(RELEARN_DATA)}, got {self.relearn_data}")
        if not 0 < self.forget_fraction < 1:
            raise ValueError(f"`forget_fraction` must be in (0, 1), got {self.forget_fraction}")
        for name in ("max_steps", "eval_steps", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"`learning_rate` must be > 0, got {self.learning_rate}")
        super().__post_init__()


def relearn_split(data: BehemothData, kind: str, forget_fraction: float, seed: int) -> tuple[Any, Any]:
    """(facts to relearn, held-out forget facts to score) of one relearning set."""
    forget = data.fact_splits["forget"]
    if kind == "retain":
        return data.fact_splits["retain"], forget
    if kind == "forget":
        count = max(1, round(forget_fraction * len(forget)))
        if count >= len(forget):
            raise ValueError(f"`forget_fraction` {forget_fraction} leaves no forget fact to score")
        chosen = np.zeros(len(forget), bool)
        chosen[np.random.default_rng([seed, _FORGET_FRACTION_STREAM]).choice(len(forget), count, replace=False)] = True
        return forget.select(np.flatnonzero(chosen)), forget.select(np.flatnonzero(~chosen))
    if kind == "subject":
        config = data.config
        relation = next(r for r in range(config.num_relations) if r != config.forget_relation)
        subjects = set(np.asarray(forget["subject_id"]).tolist()) - {-1}
        trained = [data.fact_splits[split] for split in ("forget", "retain", "dependent") if split in data.fact_splits]
        relearn = [
            rows.select(
                np.flatnonzero(
                    np.isin(np.asarray(rows["subject_id"]), list(subjects))
                    & (np.asarray(rows["relation_id"]) == relation)
                )
            )
            for rows in trained
        ]
        scored = forget.select(np.flatnonzero(np.asarray(forget["relation_id"]) != relation))
        relearn_rows = concatenate_datasets(relearn)
        if not len(relearn_rows) or not len(scored):
            raise ValueError("`relearn_data=subject` needs forget subjects with facts under two relations")
        return relearn_rows, scored
    raise ValueError(f"`relearn_data` must be one of {list(RELEARN_DATA)}, got {kind!r}")


class RecoveryCurve(TrainerCallback):
    """Scores the held-out forget facts (and a retain sample) before training and every `eval_steps`."""

    def __init__(self, data: BehemothData, scored, retain_sample, eval_steps: int):
        self.data, self.scored, self.retain_sample, self.eval_steps = data, scored, retain_sample, eval_steps
        self.curve: dict[str, list] = {"step": [], **{metric: [] for metric in CURVE_METRICS}}

    def measure(self, model, step: int) -> None:
        tokenizer = self.data.tokenizer
        forget = score_answers(model, tokenizer, self.scored["prompt"], self.scored["answer"])
        retain = score_answers(model, tokenizer, self.retain_sample["prompt"], self.retain_sample["answer"])
        self.curve["step"].append(step)
        self.curve["forget_accuracy"].append(forget.accuracy)
        self.curve["forget_Q_A_Prob"].append(float(np.exp(-forget.mean_nll).mean()))
        self.curve["retain_accuracy"].append(retain.accuracy)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.measure(model, 0)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.eval_steps == 0 or state.global_step == state.max_steps:
            self.measure(model, state.global_step)


def relearn_curve(model_path: str, data: BehemothData, kind: str, args: RelearnArguments, work_dir: Path) -> dict:
    """Relearn one model on one set; the recovery curve of its held-out forget facts."""
    model, tokenizer = load_model(data, model_path)
    relearn_rows, scored = relearn_split(data, kind, args.forget_fraction, args.seed)
    retain = data.fact_splits["retain"]
    sample = np.random.default_rng([args.seed, _RETAIN_SAMPLE_STREAM]).choice(
        len(retain), min(RETAIN_SAMPLE, len(retain)), replace=False
    )
    curve = RecoveryCurve(data, scored, retain.select(np.sort(sample)), args.eval_steps)
    training = TrainingArguments(
        output_dir=str(work_dir),
        max_steps=args.max_steps,
        learning_rate=args.learning_rate,
        lr_scheduler_type="constant",
        per_device_train_batch_size=args.batch_size // launched_processes(),  # a multiple: checked by run_relearn
        logging_steps=args.eval_steps,
        save_strategy="no",
        report_to="none",
        seed=args.seed,
    )
    trainer = Trainer(
        model=model,
        args=training,
        train_dataset=encode_examples(tokenizer, relearn_rows["prompt"], relearn_rows["answer"]),
        data_collator=DataCollatorForSeq2Seq(tokenizer, padding=True),
        callbacks=[curve],
    )
    trainer.train()
    if trainer.is_world_process_zero():
        shutil.rmtree(work_dir, ignore_errors=True)  # nothing is saved there (save_strategy=no) but logs
    return {"relearn_facts": len(relearn_rows), "scored_facts": len(scored), **curve.curve}


def run_relearn(args: RelearnArguments) -> dict[str, Any]:
    """Relearn every model (and the oracle) on every set; write the curves, a table and a plot."""
    from behemoth_hf.attacks.tables import write_attack_table

    sources = args.named_targets()
    if args.batch_size % launched_processes():
        raise ValueError(
            f"`batch_size` ({args.batch_size}) must be a multiple of the {launched_processes()} processes, which "
            "share each step's examples equally"
        )
    data = open_dataset(args.dataset)
    output = Path(args.output_dir)
    curves = {
        name: {kind: relearn_curve(path, data, kind, args, output / "trainer") for kind in args.relearn_data}
        for name, path in sources.items()
    }
    settings = {k: v for k, v in vars(args).items() if k not in ("model", "oracle", "output_dir")}
    summary = {"dataset": data.source, "models": sources, **settings}
    summary["curves"] = curves
    state = PartialState()  # set up by the Trainer's arguments
    if not state.is_main_process:  # every process measured the same curves (their weights are kept equal)
        state.wait_for_everyone()
        return summary
    output.mkdir(parents=True, exist_ok=True)
    rows = {
        name: {
            f"{kind}, step {curve['step'][index]}": {metric: curve[metric][index] for metric in CURVE_METRICS}
            for kind, curve in by_kind.items()
            for index in (0, -1)
        }
        for name, by_kind in curves.items()
    }
    write_attack_table(
        output / "relearn.md",
        title="Relearning attack",
        intro=(
            f"Fine-tuning for {args.max_steps} steps (lr {args.learning_rate}, batch {args.batch_size}) on each "
            "relearning set; `forget_*` columns score only forget facts the relearning never showed, "
            "`retain_accuracy` a retain sample. The oracle relearned the same way shows what the set teaches by "
            "itself. Curves: `relearn.png`, every point: `relearn.json`."
        ),
        rows=rows,
        columns=CURVE_METRICS,
    )
    plot_relearn_curves(curves, output / "relearn.png")
    (output / "relearn.json").write_text(json.dumps(summary, indent=2) + "\n")  # last: marks the attack complete
    state.wait_for_everyone()
    return summary


def plot_relearn_curves(curves: dict[str, dict[str, dict]], path: Path) -> None:
    """Held-out forget accuracy per step, one panel per relearning set, one line per model (oracle dashed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(next(iter(curves.values())))
    figure, axes = plt.subplots(1, len(kinds), figsize=(4 * len(kinds), 3.4), sharey=True, squeeze=False)
    for axis, kind in zip(axes[0], kinds):
        for name, by_kind in curves.items():
            curve = by_kind[kind]
            style = {"color": "black", "linestyle": "--"} if name == "oracle" else {"marker": "o", "markersize": 3}
            axis.plot(curve["step"], curve["forget_accuracy"], label=name, **style)
        axis.set_title(f"relearn on {kind} ({curve['relearn_facts']} facts)")
        axis.set_xlabel("fine-tuning step")
        axis.set_ylim(-0.02, 1.02)
    axes[0][0].set_ylabel("held-out forget accuracy")
    axes[0][-1].legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
