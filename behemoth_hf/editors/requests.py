"""Edit requests on a Behemoth world, and the two things every locate-then-edit method computes for them.

A request is one fact of the forget split and its `target_new`. Requests are grouped by subject: ROME's key is
the MLP input at the subject's last token, which depends on the subject only (the prompt's relation comes after
it), so two edits of one subject share one key and must be written as one value that gives both new answers.

- The key `k*` (Meng et al. 2022, section 3.1): the key at the subject's last token, averaged over context
  prefixes. ROME draws random English text as prefixes; a Behemoth model has only ever seen its world's sentences,
  each from position 0, so the prefixes are the subject-free beginnings of the world's own sentences (the words up to
  the subject marker `SS`: `SS` itself in the canonical order, `ad RR redi um SS` in a paraphrase, ...).
- The value: a vector `delta` added to the MLP output at the subject's last token, optimised by gradient steps so
  the model gives `target_new` + `<eos>` after each edit prompt, plus ROME's essence term (the KL to the original
  model's next-token distribution on prompts about the subject that the edit must not change: in this world the
  subject's facts outside the request), a weight decay on `delta` and a clamp of its norm.

Keyed at the prompt's last token instead (`edit_token: last`, EasyEdit's `fact_token: last`), each request is its
own group: its key is the MLP input at the last prompt token of its own prompt (no prefixes: a prompt starts a
sentence), and `delta` is added there, in the edit prompt and in the essence prompts alike.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from behemoth_hf.data import BehemothData
from behemoth_hf.editors.layers import added_at, captured_keys, captured_outputs, projection
from behemoth_hf.render import CANONICAL, SUBJ, TEMPLATES
from behemoth_hf.unlearn.data import encode_examples, pad_examples
from behemoth_hf.unlearn.losses import IGNORE_INDEX, answer_log_probs


logger = logging.getLogger(__name__)

# The word before the subject in every template ("SS"): a context prefix ends with it.
SUBJECT_MARKER = TEMPLATES[CANONICAL][TEMPLATES[CANONICAL].index(SUBJ) - 1]
# Train sentences scanned for context prefixes: every template the corpus uses appears in the first thousands.
PREFIX_SCAN_ROWS = 10_000


@dataclass
class SubjectEdit:
    """Requests written as one value: their edit prompts and new targets, and prompts of the subject's facts left as
    they are. `token` is where the value is keyed and written: `subject_last` (all the subject's requests, one key)
    or `last` (one request, keyed at its prompt's last token)."""

    subject: str
    prompts: list[str]
    targets: list[str]
    fact_ids: list[int]
    essence_prompts: list[str] = field(default_factory=list)
    token: str = "subject_last"


def subject_edits(rows, data: BehemothData, token: str = "subject_last") -> list[SubjectEdit]:
    """Group the request rows by subject (in order of first appearance), or with `token="last"` one group per row.
    A group's essence prompts are the prompts of its subject's facts in the world's fact splits that are not
    requested."""
    edits: dict[int, SubjectEdit] = {}
    by_subject: dict[int, list[SubjectEdit]] = {}
    for subject_id, subject, prompt, target, fact_id in zip(
        rows["subject_id"], rows["subject"], rows["prompt"], rows["target_new"], rows["fact_id"]
    ):
        group = subject_id if token == "subject_last" else fact_id
        if group not in edits:
            edits[group] = SubjectEdit(subject, [], [], [], token=token)
            by_subject.setdefault(subject_id, []).append(edits[group])
        edits[group].prompts.append(prompt)
        edits[group].targets.append(target)
        edits[group].fact_ids.append(fact_id)
    requested = {fact_id for edit in edits.values() for fact_id in edit.fact_ids}
    for split in data.fact_splits.values():
        if "prompt" not in split.column_names:
            continue
        subject_ids = np.asarray(split["subject_id"])
        for index in np.flatnonzero(np.isin(subject_ids, list(by_subject))):
            row = split[int(index)]
            for edit in by_subject[row["subject_id"]]:
                if row["fact_id"] not in requested and row["prompt"] not in edit.essence_prompts:
                    edit.essence_prompts.append(row["prompt"])
    return list(edits.values())


def context_prefixes(data: BehemothData, count: int) -> list[str]:
    """The `count` most frequent subject-free sentence beginnings (up to and including `SS`) among the first
    `PREFIX_SCAN_ROWS` train sentences, most frequent first (ties: first seen)."""
    counts: Counter[str] = Counter()
    scanned = 0
    for table in data.train_tables(["text"], batch_rows=PREFIX_SCAN_ROWS):
        for text in table.column("text").to_pylist():
            words = text.split()
            if SUBJECT_MARKER in words:
                counts[" ".join(words[: words.index(SUBJECT_MARKER) + 1])] += 1
        scanned += table.num_rows
        if scanned >= PREFIX_SCAN_ROWS:
            break
    if not counts:
        raise ValueError(f"`dataset` {data.source}: no train sentence holds the subject marker {SUBJECT_MARKER!r}")
    return [prefix for prefix, _ in counts.most_common(count)]


def subject_last_positions(tokenizer: PreTrainedTokenizerBase, token_ids: list[list[int]], subject: str) -> list[int]:
    """Index of the subject's last token in each token sequence (its last occurrence)."""
    subject_ids = tokenizer(subject, add_special_tokens=False).input_ids
    positions = []
    for ids in token_ids:
        starts = [i for i in range(len(ids) - len(subject_ids) + 1) if ids[i : i + len(subject_ids)] == subject_ids]
        if not starts:
            raise ValueError(f"subject {subject!r} does not occur in the prompt {tokenizer.decode(ids)!r}")
        positions.append(starts[-1] + len(subject_ids) - 1)
    return positions


def edit_positions(
    tokenizer: PreTrainedTokenizerBase, edit: SubjectEdit, token_ids: list[list[int]], prompt_lengths: list[int]
) -> list[int]:
    """Where `edit`'s value is keyed and written in each sequence (whose first `prompt_lengths` tokens are the
    prompt): the subject's last token, or the prompt's last token."""
    if edit.token == "last":
        return [length - 1 for length in prompt_lengths]
    return subject_last_positions(tokenizer, token_ids, edit.subject)


def padded(token_ids: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded `(input_ids, attention_mask)` (positions of real tokens are their indices)."""
    width = max(len(ids) for ids in token_ids)
    input_ids = torch.full((len(token_ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    for i, ids in enumerate(token_ids):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention_mask[i, : len(ids)] = 1
    return input_ids.to(device), attention_mask.to(device)


@torch.no_grad()
def subject_keys(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    layer: int,
    edits: list[SubjectEdit],
    prefixes: list[str],
) -> torch.Tensor:
    """(edits, d_in) key `k*` of each edit at `layer`: mean over `prefixes` of the MLP input at the subject's
    last token in `prefix subject`; for an edit keyed at the prompt's last token, the MLP input there (a prompt
    starts a sentence, as every sentence the model learnt)."""
    if edits and edits[0].token == "last":
        prefixes = [""]
        texts = [edit.prompts[0] for edit in edits]
    else:
        texts = [f"{prefix} {edit.subject}" for edit in edits for prefix in prefixes]
    token_ids = tokenizer(texts, add_special_tokens=False).input_ids
    positions = torch.tensor([len(ids) - 1 for ids in token_ids])
    device = next(model.parameters()).device
    with captured_keys(projection(model, layer)) as keys:
        model(*padded(token_ids, tokenizer.pad_token_id, device))
    at_token = keys[0][torch.arange(len(texts)), positions.to(device)].double()  # (edits * prefixes, d_in)
    return at_token.reshape(len(edits), len(prefixes), -1).mean(1)


@dataclass
class ValueSettings:
    """Hyper-parameters of the value optimisation (ROME's names: v_num_grad_steps, v_lr, kl_factor,
    v_weight_decay, clamp_norm_factor)."""

    steps: int
    learning_rate: float
    kl_factor: float
    weight_decay: float
    clamp_norm_factor: float
    stop_nll: float = 0.05  # ROME stops once the new target's mean NLL is this low


@dataclass
class ValueResult:
    delta: torch.Tensor  # (d_out,) added to the MLP output at the subject's last token
    output: torch.Tensor  # (d_out,) the original MLP output there (in the edit prompts: the same for all)
    log: dict


def optimise_value(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, layer: int, edit: SubjectEdit, settings: ValueSettings
) -> ValueResult:
    """The `delta` at layer `layer`'s MLP output, at the subject's last token, that makes the model answer every
    request of `edit` with its target (and `<eos>`) while keeping the subject's other facts' next-token
    distributions (KL) and `delta` small."""
    device = next(model.parameters()).device
    # The edit prompts with their targets and <eos> labelled, as every training example; then the essence prompts.
    rewrites = encode_examples(tokenizer, edit.prompts, edit.targets)
    essence_ids = tokenizer(edit.essence_prompts, add_special_tokens=False).input_ids if edit.essence_prompts else []
    examples = rewrites + [{"input_ids": ids, "labels": [IGNORE_INDEX] * len(ids)} for ids in essence_ids]
    token_ids = [example["input_ids"] for example in examples]
    prompt_lengths = [len(ids) for ids in tokenizer(edit.prompts, add_special_tokens=False).input_ids]
    prompt_lengths += [len(ids) for ids in essence_ids]
    positions = torch.tensor(edit_positions(tokenizer, edit, token_ids, prompt_lengths), device=device)
    batch = {name: tensor.to(device) for name, tensor in pad_examples(examples, tokenizer.pad_token_id).items()}
    input_ids, attention_mask, labels = batch["input_ids"], batch["attention_mask"], batch["labels"]
    num_rewrite = len(rewrites)
    essence_last = torch.tensor([len(ids) - 1 for ids in essence_ids], device=device, dtype=torch.long)
    module = projection(model, layer)

    was_training = model.training
    model.eval()
    requires_grad = [parameter.requires_grad for parameter in model.parameters()]
    model.requires_grad_(False)
    try:
        with torch.no_grad(), captured_outputs(module) as outputs:
            logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
        output = outputs[0][0, positions[0]].detach().double()
        original_essence = _last_logprobs(logits[num_rewrite:], essence_last)
        delta = torch.zeros(output.shape[-1], device=device, requires_grad=True)
        optimizer = torch.optim.Adam([delta], lr=settings.learning_rate)
        max_norm = settings.clamp_norm_factor * output.norm().item()
        nll = kl = torch.tensor(float("nan"))
        steps = 0
        for steps in range(1, settings.steps + 1):
            optimizer.zero_grad()
            with added_at(module, positions, delta):
                logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
            nll = _mean_target_nll(logits[:num_rewrite], labels[:num_rewrite])
            # ROME's decay term: weight * |delta| / |v|^2 (linear in |delta|, scaled by the squared output norm).
            loss = nll + settings.weight_decay * delta.norm() / output.norm().item() ** 2
            if essence_ids:
                kl = torch.nn.functional.kl_div(
                    _last_logprobs(logits[num_rewrite:], essence_last),
                    original_essence,
                    log_target=True,
                    reduction="batchmean",
                )
                loss = loss + settings.kl_factor * kl
            if nll.item() < settings.stop_nll:
                break
            loss.backward()
            optimizer.step()
            with torch.no_grad():  # the clamp of ROME's compute_v: |delta| <= clamp_norm_factor * |original output|
                if delta.norm() > max_norm:
                    delta.mul_(max_norm / delta.norm())
    finally:
        for parameter, flag in zip(model.parameters(), requires_grad):
            parameter.requires_grad_(flag)
        model.train(was_training)
    log = {
        "subject": edit.subject,
        "requests": len(edit.prompts),
        "essence_prompts": len(essence_ids),
        "steps": steps,
        "target_nll": round(nll.item(), 6),
        "essence_kl": round(kl.item(), 6) if essence_ids else None,
        "delta_norm": round(delta.norm().item(), 6),
    }
    return ValueResult(delta.detach().double(), output, log)


def _mean_target_nll(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean over rows of each row's mean NLL of its labelled tokens."""
    log_prob, num_tokens = answer_log_probs(logits, labels)
    return (-log_prob / num_tokens).mean()


def _last_logprobs(logits: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits[torch.arange(len(last)), last].float(), dim=-1)
