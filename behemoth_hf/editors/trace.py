"""`behemoth trace`: causal tracing (Meng et al. 2022, section 2) of where a model keeps the facts of its world.

For each fact: run the prompt clean and record every layer's hidden state (block output) and MLP output; corrupt
the subject by adding Gaussian noise to its token embeddings (std `noise_factor` x the std of the world's subject
embeddings, ROME's 3 sigma), which drops the probability of the object's first token; then restore one state, at one
layer and one position, to its clean value and measure how much of the probability comes back (the indirect effect).
Positions are pooled into ROME's categories (before the subject, subject tokens, the subject's last token, the first
token after it, further tokens, the last token), effects averaged over facts and noise samples.

The output folder holds `trace.json` (every number, and the suggested ROME layer: the layer whose MLP output at the
subject's last token has the largest mean indirect effect) and `trace.png` (the two heatmaps).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from behemoth_hf.staging import check_output, staged_output


TRACE_FILE = "trace.json"  # written last: the record of a finished trace folder
PLOT_FILE = "trace.png"
CATEGORIES = (
    "before subject",
    "subject (not last)",
    "subject last token",
    "first after subject",
    "further tokens",
    "last token",
)


@dataclass
class TraceArguments:
    """Arguments of `behemoth trace`.

    Args:
        model (`str`):
            Folder of the model to trace.
        dataset (`str`):
            Its dataset: a `behemoth generate` folder or a named config.
        output_dir (`str`):
            Where `trace.json` and `trace.png` go.
        split (`str`, defaults to `"forget"`):
            Fact split whose prompts are traced.
        num_facts (`int`, defaults to 50):
            Trace the first this many facts the model answers correctly (tracing needs a fact the model knows).
        noise_samples (`int`, defaults to 10):
            Corruptions per fact (ROME: 10).
        noise_factor (`float`, defaults to 3.0):
            Noise std in units of the std of the subject embeddings (ROME: 3).
        seed (`int`, defaults to 0):
            Seed of the noise.
        overwrite (`bool`, defaults to `False`):
            Replace a finished `output_dir` of `behemoth trace`.
    """

    model: str = field(metadata={"help": "model folder to trace"})
    dataset: str = field(metadata={"help": "its dataset: folder or named config"})
    output_dir: str = field(metadata={"help": "where trace.json and trace.png go", "aliases": ["--output"]})
    split: str = field(default="forget", metadata={"help": "fact split whose prompts are traced"})
    num_facts: int = field(default=50, metadata={"help": "trace this many correctly answered facts"})
    noise_samples: int = field(default=10, metadata={"help": "corruptions per fact"})
    noise_factor: float = field(default=3.0, metadata={"help": "noise std / subject embedding std"})
    seed: int = field(default=0, metadata={"help": "seed of the noise"})
    overwrite: bool = field(default=False, metadata={"help": "replace a finished output_dir"})

    def __post_init__(self):
        for name in ("num_facts", "noise_samples"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if not self.noise_factor > 0:
            raise ValueError(f"`noise_factor` must be > 0, got {self.noise_factor}")


def position_categories(length: int, first: int, last: int) -> list[int]:
    """Category index (into `CATEGORIES`) of each of `length` positions, the subject spanning `first..last`."""
    categories = []
    for t in range(length):
        if t == length - 1:
            categories.append(5)
        elif t < first:
            categories.append(0)
        elif t < last:
            categories.append(1)
        elif t == last:
            categories.append(2)
        else:
            categories.append(3 if t == last + 1 else 4)
    return categories


def _replace_rows(rows: torch.Tensor, positions: torch.Tensor, values: torch.Tensor):
    """A forward hook setting `output[rows, positions] = values` (on the first element of a tuple output)."""

    def hook(_module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        hidden = hidden.clone()
        hidden[rows, positions] = values
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    return hook


@torch.no_grad()
def trace_fact(
    model, token_ids: list[int], subject: tuple[int, int], answer_id: int, noise: torch.Tensor
) -> dict[str, Any]:
    """Indirect effects of one fact: `{"clean", "corrupted", "hidden": (layers, T), "mlp": (layers, T)}`.

    `noise` ((samples, subject tokens, d)) is added to the subject's embeddings in every corrupted run.
    """
    from behemoth_hf.editors.layers import blocks, captured_outputs, projection

    layers, length, samples = model.config.num_hidden_layers, len(token_ids), len(noise)
    first, last = subject
    ids = torch.tensor([token_ids])
    modules = {"hidden": list(blocks(model)), "mlp": [projection(model, layer) for layer in range(layers)]}
    with contextlib.ExitStack() as stack:
        states = {kind: [stack.enter_context(captured_outputs(m)) for m in items] for kind, items in modules.items()}
        clean = torch.softmax(model(input_ids=ids).logits[0, -1], -1)[answer_id].item()
    clean_states = {kind: [outputs[0][0] for outputs in captured] for kind, captured in states.items()}

    def corrupt(_module, _inputs, output):
        output = output.clone()
        output[:, first : last + 1] += noise.repeat(len(output) // samples, 1, 1)
        return output

    corruption = model.get_input_embeddings().register_forward_hook(corrupt)
    try:
        corrupted = torch.softmax(model(input_ids=ids.repeat(samples, 1)).logits[:, -1], -1)[:, answer_id].mean()
        effects = {}
        # One batch per kind: row block (layer, position) restores that state, `samples` rows each.
        rows = torch.arange(layers * length * samples)
        layer_of = rows // (length * samples)
        position_of = (rows // samples) % length
        for kind, items in modules.items():
            kind_handles = []
            for layer, module in enumerate(items):
                mine = rows[layer_of == layer]
                values = clean_states[kind][layer][position_of[mine]]
                kind_handles.append(module.register_forward_hook(_replace_rows(mine, position_of[mine], values)))
            try:
                logits = model(input_ids=ids.repeat(len(rows), 1)).logits[:, -1]
            finally:
                for handle in kind_handles:
                    handle.remove()
            restored = torch.softmax(logits, -1)[:, answer_id].reshape(layers, length, samples).mean(-1)
            effects[kind] = (restored - corrupted).numpy()
    finally:
        corruption.remove()
    return {"clean": clean, "corrupted": corrupted.item(), **effects}


def run_trace(args: TraceArguments) -> dict[str, Any]:
    """Trace `num_facts` known facts of `split`; write `trace.json` and `trace.png`; return the results."""
    from behemoth_hf.data import load_model, open_dataset
    from behemoth_hf.editors.layers import family
    from behemoth_hf.editors.requests import subject_last_positions
    from behemoth_hf.scoring import score_answers

    output = check_output(args.output_dir, TRACE_FILE, overwrite=args.overwrite)
    data = open_dataset(args.dataset)
    if args.split not in data.fact_splits:
        raise ValueError(f"`split` {args.split!r} is not a fact split of {data.source}: {list(data.fact_splits)}")
    model, tokenizer = load_model(data, args.model)
    family(model)
    model.eval()
    rows = data.fact_splits[args.split]
    known = np.flatnonzero(score_answers(model, tokenizer, rows["prompt"], rows["answer"]).correct)
    if len(known) == 0:
        raise ValueError(f"the model answers no fact of `split` {args.split!r}: there is nothing to trace")
    rows = rows.select(known[: args.num_facts])
    subject_ids = [tokenizer(name, add_special_tokens=False).input_ids for name in sorted(set(rows["subject"]))]
    embeddings = model.get_input_embeddings().weight
    noise_std = args.noise_factor * embeddings[[i for ids in subject_ids for i in ids]].std().item()
    generator = torch.Generator().manual_seed(args.seed)
    layers = model.config.num_hidden_layers
    sums = {kind: np.zeros((layers, len(CATEGORIES))) for kind in ("hidden", "mlp")}
    counts = np.zeros(len(CATEGORIES))
    clean, corrupted = [], []
    for prompt, subject, answer in zip(rows["prompt"], rows["subject"], rows["answer"]):
        token_ids = tokenizer(prompt, add_special_tokens=False).input_ids
        last = subject_last_positions(tokenizer, [token_ids], subject)[0]
        first = last - len(tokenizer(subject, add_special_tokens=False).input_ids) + 1
        answer_id = tokenizer(answer, add_special_tokens=False).input_ids[0]
        noise = noise_std * torch.randn(
            (args.noise_samples, last - first + 1, embeddings.shape[1]), generator=generator
        ).to(embeddings.dtype)
        result = trace_fact(model, token_ids, (first, last), answer_id, noise)
        clean.append(result["clean"])
        corrupted.append(result["corrupted"])
        categories = np.array(position_categories(len(token_ids), first, last))
        for category in range(len(CATEGORIES)):
            at = categories == category
            if at.any():
                counts[category] += 1
                for kind, total in sums.items():
                    total[:, category] += result[kind][:, at].mean(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = {kind: values / counts for kind, values in sums.items()}
    subject_last = CATEGORIES.index("subject last token")
    suggested = int(np.argmax(means["mlp"][:, subject_last]))
    results = {
        "model": args.model,
        "dataset": data.source,
        "dataset_fingerprint": data.fingerprint,
        "num_facts": len(rows),
        "noise_std": noise_std,
        "clean_probability": float(np.mean(clean)),
        "corrupted_probability": float(np.mean(corrupted)),
        "categories": list(CATEGORIES),
        "facts_per_category": counts.astype(int).tolist(),
        "hidden_effect": _jsonable(means["hidden"]),
        "mlp_effect": _jsonable(means["mlp"]),
        "suggested_rome_layer": suggested,
        "arguments": asdict(args),
    }
    with staged_output(output, TRACE_FILE, overwrite=args.overwrite) as staging:
        _plot(means, results, staging / PLOT_FILE)
        (staging / TRACE_FILE).write_text(json.dumps(results, indent=2) + "\n")
    return results


def _jsonable(values: np.ndarray) -> list[list[float | None]]:
    """Rows of floats, None where a category had no position in any fact."""
    return [[None if np.isnan(value) else round(float(value), 6) for value in row] for row in values]


def _plot(means: dict[str, np.ndarray], results: dict[str, Any], path: Path) -> None:
    from behemoth_hf.report import plt  # the report's matplotlib, set to the file-only backend

    figure, axes = plt.subplots(1, 2, figsize=(11, 1.2 + 0.6 * len(means["hidden"])), sharey=True)
    for axis, (kind, title) in zip(axes, (("hidden", "hidden state restored"), ("mlp", "MLP output restored"))):
        image = axis.imshow(np.ma.masked_invalid(means[kind]), aspect="auto", cmap="Purples", origin="lower")
        axis.set_xticks(range(len(CATEGORIES)), CATEGORIES, rotation=35, ha="right", fontsize=8)
        axis.set_title(f"{title}: P(object) recovered")
        figure.colorbar(image, ax=axis)
    axes[0].set_ylabel("layer")
    axes[0].set_yticks(range(len(means["hidden"])))
    figure.suptitle(
        f"causal trace of {results['num_facts']} facts: clean p={results['clean_probability']:.2f}, "
        f"corrupted p={results['corrupted_probability']:.2f}; suggested ROME layer {results['suggested_rome_layer']}",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def trace_command(argv: list[str]) -> int:
    from behemoth_hf.arguments import parse_dataclasses

    (args,) = parse_dataclasses((TraceArguments,), argv, prog="behemoth trace")
    results = run_trace(args)
    print(
        f"traced {results['num_facts']} facts (P(object) clean {results['clean_probability']:.3f}, corrupted "
        f"{results['corrupted_probability']:.3f}); suggested ROME layer {results['suggested_rome_layer']}; "
        f"wrote {Path(args.output_dir) / TRACE_FILE}"
    )
    return 0
