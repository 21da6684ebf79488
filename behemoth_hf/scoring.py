"""Batched teacher-forced scoring of answers after prompts, and greedy generation of answers.

One forward pass over `prompt + " " + answer <eos>` gives, for every answer token and for the `<eos>` that
ends the fact (the model learns it, `pretrain.SentenceBatches`), its log-probability and whether it is the
argmax. The answer is what greedy decoding would produce exactly when every answer token is the argmax
(each greedy step then conditions on the correct prefix), so exact-match accuracy, answer probability and
truth ratios all come from the same pass. The sequence is OpenUnlearning's (`QADataset` with the export's
template: question, a space, the answer, then `<eos>` appended), so its numbers and ours agree:
length-normalised NLL over the answer tokens and `<eos>` (probability, truth ratio, MIA loss), answer
tokens only for the token-wise metrics OU computes without the final `<eos>` (min-k%, exact memorization,
extraction strength). ROUGE needs real generation (`generate_answers`), where the scores do not already show
its result (`greedy_answers`).

Each position is computed once per call: the items are sorted by their tokens and packed as prefix trees into rows
(a prompt asked with several answers, or the start shared by a subject's facts, appears once), a 4D attention mask
lets every position see exactly its own prefix and its position id is its depth, so it computes what it computes in
its own unpadded sequence. Only the positions that predict an answer token or the final `<eos>` are unembedded, and
only they go through the last block's MLP and attention output projection. One model's evaluation on the `default`
world computes 24,900 positions this way, instead of the 170,000 tokens of its 17,000 sequences.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from behemoth_hf.layout import LAYOUTS, decoder_blocks

# OpenUnlearning's TOFU generation length (configs/generation/default.yaml); greedy decoding stops earlier at <eos>.
OU_MAX_NEW_TOKENS = 200


@dataclass
class AnswerScores:
    """Per-item scores. The lists hold, per item, one entry per answer token (the `<eos>` after the answer is
    kept apart, in `eos_logprobs` / `ends`): its log-probability, the model's argmax given the gold prefix,
    and the answer token itself."""

    correct: np.ndarray  # bool: greedy continuation of the prompt starts with exactly the answer
    ends: np.ndarray  # bool: ... and <eos> is the argmax right after the answer (greedy decoding stops there)
    token_logprobs: list[np.ndarray]
    eos_logprobs: np.ndarray  # log p(<eos> | prompt, answer)
    predicted_ids: list[np.ndarray]
    target_ids: list[np.ndarray]

    @property
    def nll(self) -> np.ndarray:
        """Summed negative log-likelihood of the answer tokens and the `<eos>` after them."""
        return -np.array([row.sum() for row in self.token_logprobs], np.float64) - self.eos_logprobs

    @property
    def num_tokens(self) -> np.ndarray:
        """Scored tokens per item: the answer tokens and `<eos>`."""
        return np.array([len(row) + 1 for row in self.token_logprobs], np.int64)

    @property
    def mean_nll(self) -> np.ndarray:
        """Per-token (length-normalised) NLL over answer + `<eos>`: OpenUnlearning's `avg_loss`."""
        return self.nll / self.num_tokens

    @property
    def accuracy(self) -> float:
        return float(self.correct.mean()) if len(self.correct) else float("nan")


def _token_ids(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> list[list[int]]:
    """Token ids of `texts` without special tokens, each distinct text encoded once (evaluation repeats a prompt
    per answer): looked up word by word where that is exact, else by the Rust tokenizer itself when there is one
    (the Python wrapper costs more than the encoding)."""
    distinct = list(dict.fromkeys(texts))
    ids = _looked_up_word_by_word(tokenizer, distinct) if _encodes_word_by_word(tokenizer) else {}
    rest = [text for text in distinct if text not in ids]
    if rest and tokenizer.is_fast:
        backend = tokenizer.backend_tokenizer
        encode = getattr(backend, "encode_batch_fast", backend.encode_batch)  # fast: no character offsets
        ids.update(zip(rest, (encoding.ids for encoding in encode(rest, add_special_tokens=False))))
    elif rest:
        ids.update(zip(rest, tokenizer(rest, add_special_tokens=False).input_ids))
    return [ids[text] for text in texts]


def _looked_up_word_by_word(tokenizer: PreTrainedTokenizerBase, texts: list[str]) -> dict[str, list[int]]:
    """Ids of the `texts` whose encoding by a word-level tokenizer is a plain vocabulary look-up of their
    space-separated words: printable ASCII (where Python's whitespace is the tokenizer's), no added token inside,
    no truncation or padding set. Several times faster than a round trip through the Rust tokenizer, which builds an
    `Encoding` per text. The other texts are left out."""
    backend = tokenizer.backend_tokenizer
    if backend.truncation is not None or backend.padding is not None:
        return {}
    vocabulary = backend.get_vocab(with_added_tokens=False)
    unknown = vocabulary.get(backend.model.unk_token) if backend.model.unk_token else None
    added = [token.content for token in backend.get_added_tokens_decoder().values()]
    found = {}
    for text in texts:
        if not (text.isascii() and text.isprintable()) or any(token in text for token in added):
            continue
        ids = [vocabulary.get(word, unknown) for word in text.split()]
        if None not in ids:  # an unknown word without an unknown token: the tokenizer's own error
            found[text] = ids
    return found


def _encodes_word_by_word(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer maps each whitespace-separated word to tokens on its own (the world's word-level
    tokenizer does): then `prompt answer` encodes as the prompt's tokens followed by the answer's."""
    if not tokenizer.is_fast:
        return False
    from tokenizers import models, pre_tokenizers

    backend = tokenizer.backend_tokenizer
    return (
        backend.normalizer is None
        and isinstance(backend.model, models.WordLevel)
        and isinstance(backend.pre_tokenizer, pre_tokenizers.WhitespaceSplit)
    )


def encode_prompt_answer(
    tokenizer: PreTrainedTokenizerBase, prompts: list[str], answers: list[str]
) -> tuple[list[list[int]], list[int]]:
    """Token ids of each `prompt answer` and the number of prompt tokens (answer tokens follow them)."""
    prompts, answers = list(prompts), list(answers)  # also accepts datasets columns
    if len(prompts) != len(answers):
        raise ValueError(f"`prompts` and `answers` differ in length ({len(prompts)} vs {len(answers)})")
    prompt_ids = _token_ids(tokenizer, prompts)
    if _encodes_word_by_word(tokenizer):
        # Half the encoding: a split's answers are a few distinct objects, encoded once each.
        full_ids = [prompt + answer for prompt, answer in zip(prompt_ids, _token_ids(tokenizer, answers))]
    else:
        full_ids = _token_ids(tokenizer, [f"{p} {a}" for p, a in zip(prompts, answers)])
    for prompt, full in zip(prompt_ids, full_ids):
        if full[: len(prompt)] != prompt or len(full) == len(prompt):
            raise ValueError("tokenizer is not prefix-consistent for these prompts/answers (or an answer is empty)")
    return full_ids, [len(prompt) for prompt in prompt_ids]


# Tokens per packed row of the forward pass. Items sorted by their tokens share a row while their prefix trees fit:
# the options scored after one prompt, the facts of one subject. Attention inside a row grows with its square, so
# 64 keeps it a few percent of the layers' cost while nearly every shared prefix lands in one row (measured on the
# `default` world's evaluation: 24,900 positions computed at 64, 23,500 at 256, 153,600 unshared).
ROW_TOKENS = 64


@dataclass
class _Row:
    """One row of a packed batch: prefix trees of several items, each position computed once."""

    tokens: list[int] = field(default_factory=list)
    parents: list[int] = field(default_factory=list)  # the row position of the token before it (-1: none)
    depths: list[int] = field(default_factory=list)  # its position in its own sequence: the position id
    items: list[tuple[int, list[int]]] = field(default_factory=list)  # item index, row positions of its tokens


def _pack(sequences: list[list[int]], order: list[int], capacity: int) -> list[_Row]:
    """`sequences[i]` for `i` in `order` (sorted by their tokens), packed as prefix trees into rows of at most
    `capacity` positions (or one sequence, when it is longer). In sorted order an item's longest prefix already in
    the row is its common prefix with the item added before it."""
    rows: list[_Row] = []
    path: list[int] = []  # row positions of the item before
    for index, common in zip(order, _common_prefix_with_previous([sequences[i] for i in order])):
        sequence = sequences[index]
        shared = int(common)
        if not rows or len(rows[-1].tokens) + len(sequence) - shared > capacity:
            rows.append(_Row())
            shared = 0
        row = rows[-1]
        # The new tokens form a chain under the last shared one: whole slices, not one token at a time.
        start = len(row.tokens)
        if len(sequence) > shared:
            row.parents.append(path[shared - 1] if shared else -1)
            row.parents.extend(range(start, start + len(sequence) - shared - 1))
        row.depths.extend(range(shared, len(sequence)))
        row.tokens.extend(sequence[shared:])
        path = path[:shared] + list(range(start, len(row.tokens)))
        row.items.append((index, path))
    return rows


def _common_prefix_with_previous(sequences: list[list[int]]) -> np.ndarray:
    """For each sequence, the length of its common prefix with the one before it (0 for the first)."""
    if not sequences:
        return np.zeros(0, np.int64)
    lengths = np.fromiter(map(len, sequences), np.int64, len(sequences))
    # Padded with -1 beyond each end, and one more column of -1 vs -2 so identical sequences still differ there.
    padded = np.full((len(sequences), int(lengths.max()) + 1), -1, np.int64)
    depth = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    padded[np.arange(len(sequences)).repeat(lengths), depth] = np.concatenate(sequences)
    padded[1::2, -1] = -2
    common = np.zeros(len(sequences), np.int64)
    common[1:] = np.argmax(padded[1:] != padded[:-1], axis=1)
    return np.minimum(common, np.minimum(lengths, np.roll(lengths, 1)))


def _chunks(sequences: list[list[int]], batch_size: int) -> list[list[int]]:
    """Indices of `sequences` in sorted order, `batch_size` per chunk: a chunk, packed, is one forward pass. The
    chunks depend on the items alone, so each process of a run packs and scores only its own (`_spread`)."""
    order = sorted(range(len(sequences)), key=sequences.__getitem__)
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def _spread(batches: list, work: Callable[[Any], Any], distributed: bool) -> list:
    """`work` on every batch, in order. With `distributed`, batch k runs on process k mod N (of accelerate's
    `PartialState`) and the results are gathered on every process: a batch is the same whatever the process count,
    so its result is too."""
    if not distributed:
        return [work(batch) for batch in batches]
    from accelerate import PartialState
    from accelerate.utils import gather_object

    state = PartialState()
    mine = [(k, work(batch)) for k, batch in enumerate(batches) if k % state.num_processes == state.process_index]
    return [result for _, result in sorted(gather_object(mine), key=lambda pair: pair[0])]


def _read_only_modules(model: PreTrainedModel) -> list[torch.nn.Module]:
    """The last block's position-wise maps whose output feeds only its own position's logits: the attention's output
    projection and the MLP (the keys and values the block attends to come from its input). None in a family
    `behemoth_hf.layout` does not know: there every position computes them."""
    if model.config.model_type not in LAYOUTS:
        return []
    parts = LAYOUTS[model.config.model_type]
    last = decoder_blocks(model, "scoring")[-1]
    return [last.get_submodule(parts.attention_output), last.get_submodule(parts.mlp_module)]


def _sharded_by_fsdp(model: torch.nn.Module) -> bool:
    fsdp = sys.modules.get("torch.distributed.fsdp")  # not imported (a second of start-up): nothing sharded by it
    return fsdp is not None and isinstance(model, fsdp.FSDPModule)


@contextlib.contextmanager
def _computed_only_at(modules: list[torch.nn.Module], positions: torch.Tensor) -> Iterator[None]:
    """Run each of `modules`, position-wise maps of (batch, seq, width) states, only at `positions` (flat indices
    into batch * seq); their output elsewhere is zeros. In the last block, the MLP (two thirds of a block's weights)
    and the attention's output projection are needed only where a logit is read."""
    shapes: list[torch.Size] = []

    def gather(_module, args):
        (states,) = args
        shapes.append(states.shape)
        return (states.reshape(-1, states.shape[-1])[positions],)

    def scatter(_module, _args, output):
        full = output.new_zeros(shapes.pop()[:-1] + output.shape[-1:])
        full.view(-1, full.shape[-1])[positions] = output
        return full

    handles = []
    try:
        for module in modules:
            handles += [module.register_forward_pre_hook(gather), module.register_forward_hook(scatter)]
        yield
    finally:
        for handle in handles:
            handle.remove()


def _score_batch(
    model: PreTrainedModel, rows: list[_Row], sequences: list[list[int]], prompt_lengths: list[int], eos_id: int
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """One forward pass over packed `rows`: the items in them, and for each item, in order, the log-probability
    and the argmax at every position that predicts an answer token or the final `<eos>`."""
    width = max(len(row.tokens) for row in rows)
    input_ids = np.zeros((len(rows), width), np.int64)  # padding positions see only themselves; never read
    position_ids = np.zeros((len(rows), width), np.int64)
    parents = np.full((len(rows), width), -1, np.int64)
    flat_positions, targets, items = [], [], []
    for r, row in enumerate(rows):
        input_ids[r, : len(row.tokens)] = row.tokens
        position_ids[r, : len(row.depths)] = row.depths
        parents[r, : len(row.parents)] = row.parents
        for index, path in row.items:
            start = prompt_lengths[index] - 1  # the last prompt token predicts the first answer token
            flat_positions += [r * width + position for position in path[start:]]
            targets += sequences[index][start + 1 :] + [eos_id]
            items.append(index)
    # A position sees its prefix: its parent's view and itself. Parents are one level up the tree, so level by
    # level every parent's view is complete before its children copy it.
    visible = np.zeros((len(rows), width, width), bool)
    visible[:, np.arange(width), np.arange(width)] = True
    for depth in range(1, int(position_ids.max()) + 1):
        row_index, position = np.nonzero((position_ids == depth) & (parents >= 0))
        visible[row_index, position] |= visible[row_index, parents[row_index, position]]
    device = next(model.parameters()).device
    dtype = model.get_output_embeddings().weight.dtype
    # Options after one prompt share the position predicting their first token: each position is read once.
    unique, inverse = np.unique(np.array(flat_positions, np.int64), return_inverse=True)
    read = torch.from_numpy(unique).to(device)
    # Additive mask, which eager and SDPA attention both take as it is.
    mask = torch.zeros(visible.shape, dtype=dtype).masked_fill_(torch.from_numpy(~visible), torch.finfo(dtype).min)
    inputs = {
        "input_ids": torch.from_numpy(input_ids).to(device),
        "attention_mask": mask[:, None].to(device),
        "position_ids": torch.from_numpy(position_ids).to(device),
        "use_cache": False,
    }
    with _computed_only_at(_read_only_modules(model), read):
        if _sharded_by_fsdp(model):
            # FSDP gathers the weights in forward hooks that start from the root module's: the root must run, and
            # it computes the logits at every position.
            logits = model(**inputs).logits
            selected_logits = logits.reshape(-1, logits.shape[-1])[read]
        else:
            hidden = model.get_decoder()(**inputs).last_hidden_state
            selected_logits = model.get_output_embeddings()(hidden.reshape(-1, hidden.shape[-1])[read])
    logprobs = torch.log_softmax(selected_logits.float(), dim=-1)
    inverse = torch.from_numpy(inverse).to(device)
    target_logprobs = logprobs[inverse, torch.tensor(targets, device=device)]
    predicted = logprobs.argmax(-1)[inverse]
    return items, target_logprobs.cpu().numpy(), predicted.cpu().numpy()


def score_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    answers: list[str],
    *,
    batch_size: int = 256,
    distributed: bool = False,
) -> AnswerScores:
    """Score `answers` + `<eos>` after `prompts`, about `batch_size` items per forward pass (model put in eval mode,
    then restored). With `distributed`, every process of the run must call it with the same items: the batches are
    split between the processes and every process gets all the scores, the same as one process computes."""
    full_ids, prompt_lengths = encode_prompt_answer(tokenizer, prompts, answers)
    eos_id = tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    # Inference mode, except under FSDP: its gathered-weight buffers outlive the call, and buffers made in inference
    # mode could not be written by the training that goes on after it.
    no_autograd = torch.no_grad() if _sharded_by_fsdp(model) else torch.inference_mode()
    try:
        capacity = max([ROW_TOKENS, *map(len, full_ids)])
        with no_autograd:
            results = _spread(
                _chunks(full_ids, batch_size),
                lambda chunk: _score_batch(model, _pack(full_ids, chunk, capacity), full_ids, prompt_lengths, eos_id),
                distributed,
            )
    finally:
        model.train(was_training)
    token_logprobs, predicted_ids, eos_logprobs, eos_predicted = [None] * len(full_ids), [None] * len(full_ids), {}, {}
    for items, logprobs, predicted in results:
        offset = 0
        for index in items:
            answer_length = len(full_ids[index]) - prompt_lengths[index]
            token_logprobs[index] = logprobs[offset : offset + answer_length]
            predicted_ids[index] = predicted[offset : offset + answer_length]
            eos_logprobs[index] = float(logprobs[offset + answer_length])
            eos_predicted[index] = int(predicted[offset + answer_length])
            offset += answer_length + 1
    target_ids = [np.array(ids[length:], np.int64) for ids, length in zip(full_ids, prompt_lengths)]
    correct = np.array([bool((p == t).all()) for p, t in zip(predicted_ids, target_ids)], bool)
    return AnswerScores(
        correct=correct,
        ends=correct & np.array([eos_predicted[i] == eos_id for i in range(len(full_ids))], bool),
        token_logprobs=token_logprobs,
        eos_logprobs=np.array([eos_logprobs[i] for i in range(len(full_ids))], np.float64),
        predicted_ids=predicted_ids,
        target_ids=target_ids,
    )


@torch.inference_mode()
def generate_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    *,
    max_new_tokens: int = OU_MAX_NEW_TOKENS,
    batch_size: int = 256,
    distributed: bool = False,
) -> list[str]:
    """Greedy continuations of `prompts` up to `<eos>` or `max_new_tokens`, decoded without special tokens.

    As OpenUnlearning's `rouge` metric generates (left-padded batches, `<eos>` ends a sequence), so ROUGE on
    these texts is OU's. The prompt is `prompt + " "`, what OU builds with the export's template tags;
    a whitespace tokenizer encodes it as the prompt alone. Prompts are batched by length (little padding), and
    `generate` stops a batch once every row has ended. `distributed` as in `score_answers`.
    """
    if max_new_tokens < 1:
        raise ValueError(f"`max_new_tokens` must be >= 1, got {max_new_tokens}")
    prompt_ids = _token_ids(tokenizer, [f"{prompt} " for prompt in prompts])
    pad_id, eos_id = tokenizer.pad_token_id, tokenizer.eos_token_id
    device = next(model.parameters()).device
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]

    def generate(batch: list[int]) -> list[str]:
        rows = [prompt_ids[i] for i in batch]
        width = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):  # left padding: every prompt ends where generation starts
            input_ids[i, width - len(row) :] = torch.tensor(row)
            attention_mask[i, width - len(row) :] = 1
        output = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            do_sample=False,
            max_new_tokens=max_new_tokens,
            eos_token_id=eos_id,
            pad_token_id=pad_id,
        )
        # Finished sequences are padded after their <eos>; decoding skips both.
        return [text.strip() for text in tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)]

    was_training = model.training
    model.eval()
    try:
        generated = _spread(batches, generate, distributed)
    finally:
        model.train(was_training)
    texts = [""] * len(prompt_ids)
    for batch, batch_texts in zip(batches, generated):
        for index, text in zip(batch, batch_texts):
            texts[index] = text
    return texts


def greedy_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    scores: AnswerScores,
    *,
    batch_size: int = 256,
    distributed: bool = False,
) -> list[str]:
    """`generate_answers(prompts)` (OU's 200 tokens), generating only where `scores`, teacher-forced scores of
    answers after `prompts`, already say what greedy decoding produces: where every answer token and then `<eos>`
    is the argmax (`scores.ends`) and the generation prompt is the scored one, it is the answer, then the end.
    A memorised fact then costs no generation at all."""
    prompts = list(prompts)
    if len(prompts) != len(scores.ends):
        raise ValueError(f"`prompts` and `scores` differ in length ({len(prompts)} vs {len(scores.ends)})")
    same_prompt = [
        a == b for a, b in zip(_token_ids(tokenizer, prompts), _token_ids(tokenizer, [f"{p} " for p in prompts]))
    ]
    known = [
        bool(ends) and same and len(target) <= OU_MAX_NEW_TOKENS
        for ends, same, target in zip(scores.ends, same_prompt, scores.target_ids)
    ]
    texts = [
        tokenizer.decode(target, skip_special_tokens=True).strip() if k else ""
        for k, target in zip(known, scores.target_ids)
    ]
    unknown = [i for i, k in enumerate(known) if not k]
    if unknown:
        generated = generate_answers(
            model, tokenizer, [prompts[i] for i in unknown], batch_size=batch_size, distributed=distributed
        )
        for i, text in zip(unknown, generated):
            texts[i] = text
    return texts
