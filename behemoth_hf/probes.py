"""Format and phrasing probes: ask facts through every template of the world, not only the one unlearning saw.

Unlearning methods train on the canonical prompt (`sro`); knowledge they only hide stays reachable in
other phrasings. Two probes per template:

- `greedy`: the exact greedy answer after the template's prompt (templates whose object comes last:
  `sro`, `rso`, `qa`), as fact accuracy is measured;
- `choice`: the true object ranks first among all objects of the fact's relation by the likelihood of
  the whole sentence (every template, `sor` and `osr` too): a multiple-choice reading that finds
  knowledge greedy decoding no longer shows. Chance is 1 / (objects of the relation).

Probes run on the forget facts, the facts that depend on them (`dependent`) and, as the control that the
model still reads a template at all, a seeded sample of retain facts of the forget split's size.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa

from behemoth_hf.data import BehemothData
from behemoth_hf.lexicon import Lexicon
from behemoth_hf.render import END, OBJ, TEMPLATE_NAMES, TEMPLATES, render
from behemoth_hf.scoring import AnswerScores, score_answers

# (prompts, answers) -> their scores by the model under probe.
Scorer = Callable[[list[str], list[str]], AnswerScores]


PROBE_SPLITS = ("forget", "dependent", "retain")
GREEDY_TEMPLATES = tuple(name for name in TEMPLATE_NAMES if TEMPLATES[name][-1] == OBJ)
# The retain control's sample is drawn from this stream (its own, so probes never shift other draws).
_RETAIN_SAMPLE_STREAM = 21


def probe_metric_names() -> list[str]:
    """Every metric name the probes can write: `{split}_{template}_{greedy|choice}_accuracy`."""
    names = []
    for split in PROBE_SPLITS:
        for template in TEMPLATE_NAMES:
            if template in GREEDY_TEMPLATES:
                names.append(f"{split}_{template}_greedy_accuracy")
            names.append(f"{split}_{template}_choice_accuracy")
    return names


def probe_rows(data: BehemothData) -> dict:
    """The fact rows each probe split asks about (the retain control is a seeded sample)."""
    splits = data.fact_splits
    rows = {split: splits[split] for split in ("forget", "dependent") if split in splits and len(splits[split])}
    retain = splits["retain"]
    size = min(len(retain), len(splits["forget"]))
    chosen = np.random.default_rng([data.config.seed, _RETAIN_SAMPLE_STREAM]).choice(len(retain), size, replace=False)
    rows["retain"] = retain.select(np.sort(chosen))
    return rows


def candidate_entities(lexicon: Lexicon, relation_ids: np.ndarray) -> np.ndarray:
    """(facts, objects) entity indices of every object the relation of each fact can take, in object-id order
    (so a fact's true object sits at column `object_id`)."""
    config = lexicon.config
    base = relation_ids % config.num_relations
    is_nested = relation_ids >= config.num_relations
    if not is_nested.any():
        return lexicon.object_entity(base[:, None], np.arange(config.num_objects)[None, :])
    if is_nested.all():
        return lexicon.nested_entity(base[:, None], np.arange(config.num_nested_objects)[None, :])
    raise ValueError("a probe batch must not mix base and nested relations (their object counts differ)")


def sentence_scores(score: Scorer, texts: list[str]) -> np.ndarray:
    """Log-likelihood of each sentence after its first word (every template starts with a fixed word, so the
    scores rank sentences of one template exactly as their full likelihoods do). The model reads a sentence's
    closing "." as `<eos>` (`pretrain.SentenceBatches`), which the scorer appends."""
    first_words, rests = zip(*(text.removesuffix(f" {END}").split(" ", 1) for text in texts))
    return -score(list(first_words), list(rests)).nll


def choice_correct(score: Scorer, data: BehemothData, lexicon: Lexicon, rows, template: str) -> np.ndarray:
    """Per fact: does the true object give the most likely sentence of `template` among the relation's objects?"""
    relation_ids = np.asarray(rows["relation_id"])
    object_ids = np.asarray(rows["object_id"])
    correct = np.zeros(len(rows), bool)
    # Base and nested relations have different object counts: score each group as one rectangle.
    for group in (relation_ids < data.config.num_relations, relation_ids >= data.config.num_relations):
        indices = np.flatnonzero(group)
        if not len(indices):
            continue
        candidates = candidate_entities(lexicon, relation_ids[indices])
        count = candidates.shape[1]
        subjects = pa.array(np.repeat(np.asarray(rows["subject"], dtype=object)[indices], count))
        relations = pa.array(np.repeat(np.asarray(rows["relation"], dtype=object)[indices], count))
        objects = lexicon.names.take(pa.array(candidates.reshape(-1)))
        texts = render(template, subjects, relations, objects).to_pylist()
        scores = sentence_scores(score, texts).reshape(len(indices), count)
        correct[indices] = scores.argmax(axis=1) == object_ids[indices]
    return correct


def greedy_correct(score: Scorer, rows, template: str) -> np.ndarray:
    """Per fact: is the greedy answer after the template's prompt exactly the object?"""
    subjects, relations = pa.array(list(rows["subject"])), pa.array(list(rows["relation"]))
    prompts = render(template, subjects, relations, None, prompt_only=True).to_pylist()
    return score(prompts, rows["answer"]).correct


def run_probes(
    model, data: BehemothData, batch_size: int = 256, distributed: bool = False
) -> dict[str, tuple[np.ndarray, list[int]]]:
    """Every probe on every probe split: metric name -> (per-fact correctness, fact ids). With `distributed`, the
    processes of the run share the scoring, as in `score_answers`."""

    def score(prompts, answers) -> AnswerScores:
        return score_answers(model, data.tokenizer, prompts, answers, batch_size=batch_size, distributed=distributed)

    results = {}
    lexicon = Lexicon(data.config)  # built once: every choice probe draws its candidates from it
    for split, rows in probe_rows(data).items():
        fact_ids = list(rows["fact_id"])
        for template in TEMPLATE_NAMES:
            if template in GREEDY_TEMPLATES:
                results[f"{split}_{template}_greedy_accuracy"] = (
                    greedy_correct(score, rows, template),
                    fact_ids,
                )
            results[f"{split}_{template}_choice_accuracy"] = (
                choice_correct(score, data, lexicon, rows, template),
                fact_ids,
            )
    return results
