"""Project a generated world onto the data layouts of OpenUnlearning (TOFU-shaped) and EasyEdit.

Fact rows already carry every field those tools read (see `splits.features`), so an export only
selects rows and renames columns; it never re-renders text. Only the fact splits are read (through
`data.open_dataset`), so the `train` corpus (hundreds of millions of rows for `paper`) is never loaded.

OpenUnlearning's TOFU configs read `load_dataset(path, name=<config>, split="train")`, so the export is a
Parquet folder per config plus a README whose YAML `configs:` lists them: pointing `hf_args.path` at
the folder (or at the Hub repo it is pushed to) is the only change a TOFU dataset config needs. OU's
configuration for that (and for our model and a CPU) is written to `configs/`, OU's `--config-dir`
(`_write_openunlearning_configs`). Which world rows go into which config:

- `full`: every trained fact (forget + retain + dependent), in fact-id order.
- `forgetXX` / `retainYY`: the forget split and its complement within `full` (retain + dependent, so a
  model trained on `retainYY` is the exact "never saw the forget facts" oracle). XX is the percentage
  of trained subjects whose facts are forgotten (TOFU's forget10 = 10 % of its authors), YY = 100 - XX.
- `forgetXX_perturbed`: the same rows as `forgetXX` with paraphrase and perturbed-answer fields.
- `retain_perturbed`: a fixed seeded sample of min(400, n) retain facts (TOFU uses 400).
- `holdoutXX`: the facts of subjects never trained on (XX = holdout subjects / trained subjects).
- `real_authors_perturbed` / `world_facts_perturbed` (TOFU's names, so its model-utility metrics run
  unchanged): general-knowledge probes the unlearned model should keep. `real_authors` are up to 100
  retain facts of subjects outside the forget set (TOFU's real authors are people outside the fictitious
  set). `world_facts` are the object -> nested-object facts ("kefo is located in X") when the world is
  nested: knowledge shared by every holder of the object, the closest analogue of world facts. A
  world without them gets a second seeded sample of retain facts of non-forget subjects, disjoint from
  `real_authors` whenever there are enough.

Every `*_perturbed` config has `question, answer, paraphrased_answer, paraphrased_question,
perturbed_answer` (a list of the world's `num_perturbed` wrong objects); the others have `question,
answer`. `question` is the canonical statement up to the object (`prompt`), not the Q/A form: the
model is trained on statements, and OpenUnlearning appends the answer to the question.

EasyEdit reads a JSON list of edit requests (`prompt, subject, target_new, ground_truth,
rephrase_prompt, locality, portability`); `export_easyedit` writes one per fact of a split.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from behemoth_hf.config import GENERATOR_VERSION
from behemoth_hf.generate import write_sharded
from behemoth_hf.staging import check_output, refuse_unsafe_path, staged_output


logger = logging.getLogger(__name__)

EXPORT_METADATA_FILE = "behemoth_export.json"
OU_SPLIT = "train"  # every OpenUnlearning/TOFU config has this one split
BASE_FIELDS = ("question", "answer")
PERTURBED_FIELDS = ("question", "answer", "paraphrased_answer", "paraphrased_question", "perturbed_answer")
RETAIN_PERTURBED_ROWS = 400  # TOFU's retain_perturbed size
GENERAL_KNOWLEDGE_ROWS = 100  # TOFU: 100 real-author facts (and 117 world facts)
REAL_AUTHORS = "real_authors_perturbed"
WORLD_FACTS = "world_facts_perturbed"
# Seeds of the fixed samples. They depend only on the rows, so the same world always exports the same bytes.
_RETAIN_SAMPLE_STREAM, _GENERAL_KNOWLEDGE_STREAM = 1, 2
# OpenUnlearning builds `user_start_tag + question + user_end_tag + asst_start_tag + answer` (+ `asst_end_tag`
# after in-context examples). Our WordLevel tokenizer splits on whitespace, so a single space between
# question and answer is all a prompt needs, and " . " closes an in-context example exactly as a
# training sentence ends. Checked against the world's tokenizer at export time.
TEMPLATE_ARGS: dict[str, Any] = {
    "apply_chat_template": False,
    "user_start_tag": "",
    "user_end_tag": " ",
    "asst_start_tag": "",
    "asst_end_tag": " . ",
}
# Fact columns an export reads (all produced by splits.fact_table).
_REQUIRED_COLUMNS = (
    "fact_id",
    "subject_id",
    "subject",
    "relation_id",
    "dependency",
    "depends_on",
    "propagated_answer",
    "prompt",
    "answer",
    "paraphrased_question",
    "paraphrased_answer",
    "perturbed_answer",
    "target_new",
)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_CARD_TEMPLATE = """---
{{ card_data }}
---

# Behemoth, OpenUnlearning/TOFU layout

{{ source }} exported by `behemoth export openunlearning` in the layout of
[locuslab/TOFU](https://huggingface.co/datasets/locuslab/TOFU), so OpenUnlearning's TOFU configs run on it
by setting `hf_args.path` to this folder or repo and `forget_split={{ forget }}`, `retain_split={{ retain }}`,
`holdout_split={{ holdout }}`. `configs/` holds OpenUnlearning configs for it (`--config-dir`): the model config
`Behemoth` (prompt template tags) and the experiments `eval/behemoth/default` and `unlearn/behemoth/default`.

| config | rows | |
|---|---|---|
{% for name, rows, description in configs %}| `{{ name }}` | {{ rows }} | {{ description }} |
{% endfor %}
`question` is the canonical statement up to the object and `answer` its object (one word of the
synthetic language); `perturbed_answer` lists wrong objects of the same relation.
"""


@dataclass
class _Source:
    """The fact splits of one world, as Arrow tables, plus what came with them."""

    tables: dict[str, pa.Table]
    tokenizer: Any | None
    metadata: dict[str, Any]

    def split(self, name: str) -> pa.Table:
        return self.tables[name]


# ---------------------------------------------------------------------------------------------- OpenUnlearning
ORACLE_LOG = "oracle/TOFU_EVAL.json"
# What OpenUnlearning's TOFU config reads from `retain_logs_path` (peers.md 1.7).
ORACLE_LOG_METRICS = ("forget_truth_ratio", "mia_min_k")
# OpenUnlearning's `--config-dir` inside the export. Hydra searches OU's own configs first, so ours carry new names.
OU_CONFIG_DIR = "configs"
OU_MODEL = "Behemoth"
OU_EVAL_EXPERIMENT = "eval/behemoth/default"
OU_UNLEARN_EXPERIMENT = "unlearn/behemoth/default"
# The shipped unlearning recipes' schedule (both GradAscent and NPO use it), so OU's unlearned models compare with
# `behemoth unlearn`'s. OU's TOFU setting (lr 1e-5) barely moves a small model trained from scratch.
_OU_RECIPE = "gradient_ascent.yaml"
_OU_RECIPE_KEYS = ("learning_rate", "num_train_epochs", "per_device_train_batch_size", "lr_scheduler_type")
# Merged over OU's trainer/finetune.yaml; each one is what stops OU's trainers on a CPU-only machine.
_OU_CPU_TRAINER_ARGS = {
    "warmup_epochs": 0,  # OU turns warmup epochs into steps by dividing by torch.cuda.device_count(); 0 skips that
    "optim": "adamw_torch",  # paged_adamw_32bit needs bitsandbytes and a GPU
    "bf16": False,  # our models are float32
    "bf16_full_eval": False,
    "report_to": "none",  # tensorboard is not part of OU's requirements
    "gradient_accumulation_steps": 1,  # the recipe's batch size is the whole batch
    # OU's per-epoch TOFU evaluation would run the eval once per epoch: run the eval experiment on the result.
    "do_eval": False,
    "eval_on_start": False,
    "eval_strategy": "no",
}
_OU_MODEL_HEADER = """\
# OpenUnlearning model config for a Behemoth model (this folder is OU's --config-dir). The experiments
# eval/behemoth/default and unlearn/behemoth/default select it and fill both paths from `behemoth_model_dir`;
# with OU's own experiments pass model=Behemoth and both paths. The tags are whitespace only: the synthetic
# vocabulary has no 'Question:'/'Answer:' words, and a space between question and answer is how training reads.
"""
_OU_EVAL_HEADER = """\
# @package _global_
# OpenUnlearning's TOFU evaluation of a Behemoth model on this export, on a CPU or a GPU:
#   cd <open-unlearning> && python src/eval.py --config-name=eval.yaml --config-dir=<export>/configs \\
#     experiment=eval/behemoth/default behemoth_data_dir=<export> behemoth_model_dir=<model> task_name=<name>
# Add retain_logs_path=<the oracle's TOFU_EVAL.json> for forget_quality and privleak. Every dataset copy of OU's
# default TOFU metrics reads `behemoth_data_dir` (a folder or a Hub repo of this export).
"""
_OU_UNLEARN_HEADER = """\
# @package _global_
# OpenUnlearning's unlearning of a Behemoth model on this export (trainer=GradAscent, NPO, GradDiff, ...):
#   cd <open-unlearning> && python src/train.py --config-name=unlearn.yaml --config-dir=<export>/configs \\
#     experiment=unlearn/behemoth/default trainer=NPO behemoth_data_dir=<export> behemoth_model_dir=<model> \\
#     task_name=<name>
# The trainer arguments run on a CPU as well as a GPU; the schedule is that of behemoth's unlearning recipes.
"""


def export_openunlearning(
    dataset: str | os.PathLike | Mapping,
    output_dir: str | os.PathLike,
    *,
    forget_name: str | None = None,
    retain_name: str | None = None,
    holdout_name: str | None = None,
    tokenizer: Any | None = None,
    oracle_eval: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> Path:
    """Write the TOFU-shaped export of `dataset` to `output_dir` and return the folder.

    `oracle_eval` is the retain oracle's `BEHEMOTH_EVAL.json` (from `behemoth evaluate`); it is written as
    `oracle/TOFU_EVAL.json`, re-indexed by row position as OpenUnlearning indexes its datasets, for
    OpenUnlearning's `retain_logs_path` (forget quality and privacy leakage).

    `dataset` is a `behemoth generate` folder, a named config or a `DatasetDict` of fact splits.

    `forget_name`, `retain_name` and `holdout_name` replace the computed `forgetXX`, `retainYY` and
    `holdoutXX` config names (e.g. to keep a TOFU experiment's `forget10` when the world forgets 12 %).
    The prompt template is checked with `tokenizer` (default: the world's own tokenizer); a `DatasetDict`
    without one skips that check.
    """
    output = check_output(output_dir, EXPORT_METADATA_FILE, overwrite=overwrite)
    source = _load_source(dataset, tokenizer)
    names = _config_names(source, forget_name=forget_name, retain_name=retain_name, holdout_name=holdout_name)
    configs, descriptions = _openunlearning_configs(source, names)
    oracle_log = _oracle_log(oracle_eval, source.split("forget")) if oracle_eval is not None else None
    if source.tokenizer is not None:
        for table in configs.values():
            head = table.slice(0, 64)
            check_template(source.tokenizer, head.column("question").to_pylist(), head.column("answer").to_pylist())
    else:
        logger.warning("no tokenizer given: the OpenUnlearning template tags were not checked against the vocabulary")

    with staged_output(output, EXPORT_METADATA_FILE, overwrite=overwrite) as staging:
        for name, table in configs.items():
            (staging / name).mkdir()
            write_sharded(staging / name, OU_SPLIT, [table], table.num_rows, table.schema)
        _write_openunlearning_card(staging, source, names, configs, descriptions)
        _write_openunlearning_configs(staging, names)
        if oracle_log is not None:
            (staging / ORACLE_LOG).parent.mkdir()
            (staging / ORACLE_LOG).write_text(json.dumps(oracle_log, indent=4) + "\n")
        metadata = {
            "format": "openunlearning",
            "source": {key: source.metadata.get(key) for key in ("config_name", "fingerprint", "generator_version")},
            "forget_split": names["forget"],
            "retain_split": names["retain"],
            "holdout_split": names["holdout"],
            "configs": {name: table.num_rows for name, table in configs.items()},
            "template_args": TEMPLATE_ARGS,
        }
        (staging / EXPORT_METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
    logger.info("wrote the OpenUnlearning export (%s) to %s", ", ".join(configs), output)
    return output


def _oracle_log(path: str | os.PathLike, forget: pa.Table) -> dict[str, Any]:
    """The oracle's forget truth ratios and min-k% AUC, keyed by the forget config's row positions."""
    from behemoth_hf.metrics import read_eval_json

    results = read_eval_json(path)
    missing = [key for key in ORACLE_LOG_METRICS if key not in results]
    if missing:
        raise ValueError(f"`oracle_eval` {path} lacks {missing}: pass the oracle's BEHEMOTH_EVAL.json")
    by_fact = results["forget_truth_ratio"].get("value_by_index", {})
    positions = [str(fact_id) for fact_id in forget.column("fact_id").to_pylist()]
    if set(by_fact) != set(positions):
        raise ValueError(f"`oracle_eval` {path} was not computed on this world's forget split (its fact ids differ)")
    log = {key: {"agg_value": results[key]["agg_value"]} for key in ORACLE_LOG_METRICS}
    log["forget_truth_ratio"]["value_by_index"] = {str(row): by_fact[fact] for row, fact in enumerate(positions)}
    return log


def _config_names(
    source: _Source, *, forget_name: str | None, retain_name: str | None, holdout_name: str | None
) -> dict[str, str]:
    trained = pa.concat_tables([source.split(s) for s in ("forget", "retain", "dependent") if s in source.tables])
    trained_subjects = _subjects(trained)
    if not trained_subjects:
        raise ValueError("`dataset` has no trained facts of any subject; nothing to export")
    forget_percent = _percent(len(_subjects(source.split("forget"))), len(trained_subjects))
    holdout_percent = _percent(len(_subjects(source.split("holdout"))), len(trained_subjects))
    names = {
        "forget": forget_name or f"forget{forget_percent:02d}",
        "retain": retain_name or f"retain{100 - forget_percent:02d}",
        "holdout": holdout_name or f"holdout{holdout_percent:02d}",
    }
    for key, given in (("forget_name", forget_name), ("retain_name", retain_name), ("holdout_name", holdout_name)):
        if given is not None and (not isinstance(given, str) or not _NAME.fullmatch(given)):
            raise ValueError(f"`{key}` must be a config name of letters, digits, '_', '-' or '.', got {given!r}")
    fixed = {"full", "retain_perturbed", REAL_AUTHORS, WORLD_FACTS, f"{names['forget']}_perturbed"}
    chosen = list(names.values())
    if len(set(chosen)) < len(chosen) or set(chosen) & fixed:
        raise ValueError(
            f"config names must differ from each other and from {sorted(fixed)}: got forget {names['forget']!r}, "
            f"retain {names['retain']!r}, holdout {names['holdout']!r} (`forget_name`, `retain_name`, `holdout_name`)"
        )
    return names


def _subjects(table: pa.Table) -> set[int]:
    subject_id = table.column("subject_id").to_numpy()
    return set(np.unique(subject_id[subject_id >= 0]).tolist())


def _percent(part: int, whole: int) -> int:
    """Rounded percentage, kept off 0 and 100 unless exact: `forget00` for a non-empty set would mislead."""
    value = math.floor(100 * part / whole + 0.5)
    if 0 < part < whole:
        value = min(max(value, 1), 99)
    return value


def _openunlearning_configs(source: _Source, names: dict[str, str]) -> tuple[dict[str, pa.Table], dict[str, str]]:
    forget, retain, holdout = source.split("forget"), source.split("retain"), source.split("holdout")
    trained = [source.split(s) for s in ("forget", "retain", "dependent") if s in source.tables]
    full = pa.concat_tables(trained).sort_by("fact_id")
    kept = pa.concat_tables(trained[1:]).sort_by("fact_id")
    retain_sample = _sample(retain, RETAIN_PERTURBED_ROWS, _RETAIN_SAMPLE_STREAM)
    (real_authors, real_authors_kind), (world_facts, world_facts_kind) = _general_knowledge(source)
    forget_name, retain_name, holdout_name = names["forget"], names["retain"], names["holdout"]
    configs = {
        "full": (full, BASE_FIELDS, "every trained fact (forget + retain + dependent)"),
        forget_name: (forget, BASE_FIELDS, "facts to forget"),
        retain_name: (kept, BASE_FIELDS, "every trained fact not in the forget set (retain + dependent)"),
        f"{forget_name}_perturbed": (forget, PERTURBED_FIELDS, f"`{forget_name}` with paraphrases and wrong answers"),
        "retain_perturbed": (retain_sample, PERTURBED_FIELDS, "fixed sample of retain facts"),
        holdout_name: (holdout, BASE_FIELDS, "facts of subjects never trained on (membership inference)"),
        REAL_AUTHORS: (real_authors, PERTURBED_FIELDS, f"general knowledge: {real_authors_kind}"),
        WORLD_FACTS: (world_facts, PERTURBED_FIELDS, f"general knowledge: {world_facts_kind}"),
    }
    tables = {name: _project(table, fields) for name, (table, fields, _) in configs.items()}
    return tables, {name: description for name, (_, _, description) in configs.items()}


def openunlearning_utility_sets(dataset: Mapping) -> dict[str, pa.Table]:
    """`retain_perturbed`, `real_authors_perturbed` and `world_facts_perturbed` exactly as the export writes them,
    for `behemoth evaluate`'s `ou_model_utility`. `dataset` maps fact split names to `datasets.Dataset`s."""
    source = _load_source(dataset)
    (real_authors, _), (world_facts, _) = _general_knowledge(source)
    retain = _sample(source.split("retain"), RETAIN_PERTURBED_ROWS, _RETAIN_SAMPLE_STREAM)
    tables = {"retain_perturbed": retain, REAL_AUTHORS: real_authors, WORLD_FACTS: world_facts}
    return {name: _project(table, PERTURBED_FIELDS) for name, table in tables.items()}


def _project(table: pa.Table, fields: tuple[str, ...]) -> pa.Table:
    """The export columns, as plain Arrow types without HF feature metadata.

    Plain types load with any `datasets` version (OpenUnlearning pins 3.x, which cannot read the
    feature metadata datasets 5 writes), and `perturbed_answer` becomes a variable-length list, the
    type TOFU's JSON gives it.
    """
    columns = {
        "question": table.column("prompt"),
        "answer": table.column("answer"),
        "paraphrased_answer": table.column("paraphrased_answer"),
        "paraphrased_question": table.column("paraphrased_question"),
        "perturbed_answer": table.column("perturbed_answer").cast(pa.list_(pa.string())),
    }
    return pa.table({name: columns[name] for name in fields})


def _sample(table: pa.Table, count: int, stream: int) -> pa.Table:
    """A fixed sample of at most `count` rows, kept in the table's (fact-id) order."""
    order = np.random.default_rng([0, stream]).permutation(table.num_rows)
    return table.take(pa.array(np.sort(order[:count])))


def _general_knowledge(source: _Source) -> tuple[tuple[pa.Table, str], tuple[pa.Table, str]]:
    """The `real_authors` and `world_facts` probes, each with what it holds (module docstring: why these rows)."""
    retain = source.split("retain")
    subject_id = retain.column("subject_id").to_numpy()
    forgotten = np.array(sorted(_subjects(source.split("forget"))), dtype=subject_id.dtype)
    pool = np.flatnonzero((subject_id >= 0) & ~np.isin(subject_id, forgotten))
    kind = "retain facts of subjects never forgotten"
    if not len(pool):  # every subject lost a fact (relation-level forgetting): retained facts of any subject
        pool, kind = np.flatnonzero(subject_id >= 0), "retain facts of subjects (all lost some fact)"
    if not len(pool):
        pool, kind = np.arange(retain.num_rows), "retain facts"
    candidates = retain.take(pa.array(pool))
    rng = np.random.default_rng([0, _GENERAL_KNOWLEDGE_STREAM])
    order = rng.permutation(candidates.num_rows)
    real_authors = candidates.take(pa.array(np.sort(order[:GENERAL_KNOWLEDGE_ROWS])))

    nested_object = pc.equal(retain.column("dependency"), "nested_object")
    if pc.any(nested_object).as_py():
        facts = retain.filter(nested_object)
        world_facts = _sample(facts, GENERAL_KNOWLEDGE_ROWS, _GENERAL_KNOWLEDGE_STREAM)
        return (real_authors, kind), (world_facts, "object -> nested-object facts")
    # No nested facts: the next rows of the same permutation, disjoint from real_authors when there are enough.
    rest = order[GENERAL_KNOWLEDGE_ROWS:]
    if len(rest) < min(GENERAL_KNOWLEDGE_ROWS, candidates.num_rows):
        rest = order[::-1]
    world_facts = candidates.take(pa.array(np.sort(rest[:GENERAL_KNOWLEDGE_ROWS])))
    return (real_authors, kind), (world_facts, f"a second sample of {kind}")


def check_template(tokenizer: Any, questions: list[str], answers: list[str]) -> None:
    """Raise `ValueError` unless OpenUnlearning's prompt building works with `TEMPLATE_ARGS` and `tokenizer`.

    OpenUnlearning masks the prompt by token count (labels = -100 for the first len(prompt ids) tokens),
    so the prompt's ids must be a strict prefix of prompt + answer ids; no tag may fall outside the
    vocabulary; and ROUGE needs the text to survive decode(encode()).
    """
    tags = TEMPLATE_ARGS
    unk = tokenizer.unk_token_id
    for question, answer in zip(questions, answers, strict=True):
        prompt = tags["user_start_tag"] + question + tags["user_end_tag"] + tags["asst_start_tag"]
        prompt_ids = tokenizer(prompt, add_special_tokens=True)["input_ids"]
        full_ids = tokenizer(prompt + answer, add_special_tokens=True)["input_ids"]
        few_shot_ids = tokenizer(prompt + answer + tags["asst_end_tag"] + prompt, add_special_tokens=True)["input_ids"]
        if full_ids[: len(prompt_ids)] != prompt_ids or len(full_ids) <= len(prompt_ids):
            raise ValueError(f"template tags break prefix consistency for {question!r} + {answer!r}")
        if unk is not None and unk in full_ids + few_shot_ids:
            raise ValueError(f"template tags or text of {question!r} + {answer!r} fall outside the vocabulary")
        if tokenizer.decode(full_ids) != f"{question} {answer}":
            raise ValueError(f"{question!r} + {answer!r} does not survive decode(encode())")


def _write_openunlearning_card(
    root: Path, source: _Source, names: dict[str, str], configs: dict[str, pa.Table], descriptions: dict[str, str]
) -> None:
    from huggingface_hub import DatasetCard, DatasetCardData

    card_data = DatasetCardData(
        license="apache-2.0",
        pretty_name="Behemoth (OpenUnlearning layout)",
        task_categories=["question-answering", "text-generation"],
        tags=["synthetic", "unlearning", "behemoth", "tofu", "open-unlearning"],
        configs=[
            {"config_name": name, "data_files": [{"split": OU_SPLIT, "path": f"{name}/{OU_SPLIT}-*.parquet"}]}
            for name in configs
        ],
    )
    world = source.metadata.get("config_name")
    card = DatasetCard.from_template(
        card_data,
        template_str=_CARD_TEMPLATE,
        source=f"The Behemoth world `{world}` (fingerprint `{source.metadata.get('fingerprint')}`)"
        if world
        else "A Behemoth world",
        forget=names["forget"],
        retain=names["retain"],
        holdout=names["holdout"],
        configs=[(name, table.num_rows, descriptions[name]) for name, table in configs.items()],
    )
    (root / "README.md").write_text(str(card))


def _write_openunlearning_configs(root: Path, names: dict[str, str]) -> None:
    """Write `configs/`, the `--config-dir` with which unmodified OpenUnlearning runs on the export (on CPU too)."""
    import yaml

    eval_tofu = {
        "forget_split": "${forget_split}",
        "holdout_split": "${holdout_split}",
        "retain_logs_path": "${retain_logs_path}",
        "question_key": "${question_key}",
        # OU reuses any metric already in the output folder's TOFU_EVAL.json, even a null one (ou-harness pitfall 6).
        "overwrite": True,
        "metrics": _ou_metric_datasets(),
    }
    splits = {
        "forget_split": names["forget"],
        "retain_split": names["retain"],
        "holdout_split": names["holdout"],
        "retain_logs_path": None,
        "question_key": "question",
    }
    paths = {"behemoth_data_dir": "???", "behemoth_model_dir": "???"}
    # OU's get_model pops model_args' path before it loads the tokenizer, so both read the top-level key.
    model = {
        "model_args": {"pretrained_model_name_or_path": "${behemoth_model_dir}"},
        "tokenizer_args": {"pretrained_model_name_or_path": "${behemoth_model_dir}"},
    }
    eval_experiment = {
        "defaults": [{"override /model": OU_MODEL}, {"override /eval": "tofu"}],
        **paths,
        **splits,
        # eval.yaml forces device_map cuda; auto places the model on the GPU when there is one, else on the CPU.
        "model": {
            "model_args": {**model["model_args"], "device_map": "auto"},
            "tokenizer_args": model["tokenizer_args"],
        },
        "eval": {"tofu": eval_tofu},
    }
    data = {
        name: {"args": {"hf_args": {"name": f"${{{split}}}", "path": "${behemoth_data_dir}"}}}
        for name, split in (("TOFU_QA_forget", "forget_split"), ("TOFU_QA_retain", "retain_split"))
    }
    unlearn_experiment = {
        "defaults": [
            {"override /model": OU_MODEL},
            {"override /trainer": "GradAscent"},
            {"override /data": "unlearn"},
            {"override /data/datasets@data.forget": "TOFU_QA_forget"},
            {"override /data/datasets@data.retain": "TOFU_QA_retain"},
            {"override /eval": "tofu"},
        ],
        **paths,
        **splits,
        "model": model,
        "data": {
            "anchor": "forget",
            "forget": {"TOFU_QA_forget": data["TOFU_QA_forget"]},
            "retain": {"TOFU_QA_retain": data["TOFU_QA_retain"]},
        },
        "eval": {"tofu": eval_tofu},
        "trainer": {"args": _ou_trainer_args()},
    }
    model_config = {
        "model_args": {"pretrained_model_name_or_path": "???", "torch_dtype": "float32"},
        "tokenizer_args": {"pretrained_model_name_or_path": "???"},
        "template_args": TEMPLATE_ARGS,
    }
    files = {
        f"model/{OU_MODEL}.yaml": (_OU_MODEL_HEADER, model_config),
        f"experiment/{OU_EVAL_EXPERIMENT}.yaml": (_OU_EVAL_HEADER, eval_experiment),
        f"experiment/{OU_UNLEARN_EXPERIMENT}.yaml": (_OU_UNLEARN_HEADER, unlearn_experiment),
    }
    for relative, (header, config) in files.items():
        path = root / OU_CONFIG_DIR / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(header + yaml.dump(config, Dumper=_plain_dumper(), sort_keys=False, width=119))


def _plain_dumper():
    import yaml

    class PlainDumper(yaml.SafeDumper):
        """Writes a shared node out in full each time: YAML anchors would only puzzle a reader of the config."""

        def ignore_aliases(self, data: Any) -> bool:
            return True

    return PlainDumper


def _ou_trainer_args() -> dict[str, Any]:
    import yaml

    from behemoth_hf.quickstart import recipe

    schedule = yaml.safe_load(Path(recipe(_OU_RECIPE)).read_text())
    return {**{key: schedule[key] for key in _OU_RECIPE_KEYS}, "weight_decay": 0.0, **_OU_CPU_TRAINER_ARGS}


def _ou_metric_datasets() -> dict[str, Any]:
    """OpenUnlearning's default TOFU metrics, down to every copy of a dataset config they load, each pointed at
    `behemoth_data_dir`.

    A metric carries its own copy of the datasets of each metric it pre-computes (`forget_quality` ->
    `forget_truth_ratio` -> PARA/PERT again): 23 copies in all (configs/eval/tofu.yaml and tofu_metrics/ at
    d3d7cf9). Hydra searches OU's own configs before `--config-dir`, so same-named dataset files cannot shadow
    OU's: every copy is set here, and a copy left at `locuslab/TOFU` would make OU reach for the Hub.
    """
    point = {"args": {"hf_args": {"path": "${behemoth_data_dir}"}}}

    def loads(*datasets: str) -> dict[str, Any]:
        return {"datasets": {dataset: point for dataset in datasets}}

    def pre_compute(**metrics: dict[str, Any]) -> dict[str, Any]:
        return {"pre_compute": metrics}

    def pair(prefix: str, correct: str, wrong: str, correct_data: str, wrong_data: str) -> dict[str, Any]:
        return pre_compute(**{f"{prefix}_{correct}": loads(correct_data), f"{prefix}_{wrong}": loads(wrong_data)})

    forget_truth_ratio = pair("forget_Q_A", "PARA_Prob", "PERT_Prob", "TOFU_QA_forget_para", "TOFU_QA_forget_pert")
    general = {
        f"{kind}_{metric}": pair(f"{kind}_Q_A", "Prob", "PERT_Prob", f"TOFU_QA_{kind}", f"TOFU_QA_{kind}_pert")
        for kind in ("ra", "wf")
        for metric in ("Q_A_Prob_normalised", "Truth_Ratio")
    }
    for kind in ("ra", "wf"):
        general[f"{kind}_Q_A_ROUGE"] = loads(f"TOFU_QA_{kind}")
    return {
        "forget_truth_ratio": forget_truth_ratio,
        "forget_quality": pre_compute(forget_truth_ratio=forget_truth_ratio),
        "forget_Q_A_Prob": loads("TOFU_QA_forget"),
        "forget_Q_A_ROUGE": loads("TOFU_QA_forget"),
        "model_utility": pre_compute(
            retain_Q_A_Prob=loads("TOFU_QA_retain_eval"),
            retain_Q_A_ROUGE=loads("TOFU_QA_retain_eval"),
            retain_Truth_Ratio=pair(
                "retain_Q_A", "PARA_Prob", "PERT_Prob", "TOFU_QA_retain_para", "TOFU_QA_retain_pert"
            ),
            **general,
        ),
        "privleak": pre_compute(mia_min_k=loads("TOFU_QA_forget", "TOFU_QA_holdout")),
        "extraction_strength": loads("TOFU_QA_forget"),
    }


# ---------------------------------------------------------------------------------------------- EasyEdit
def export_easyedit(
    dataset: str | os.PathLike | Mapping,
    output_file: str | os.PathLike,
    *,
    split: str = "forget",
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Write one EasyEdit edit request per fact of `split` as a JSON list; return the file path.

    `target_new` is the fact's edit target and `ground_truth` its true object. `locality` is a retain
    fact, preferably of another subject with the same relation, drawn with `seed` (it must not change
    when the edit works). `portability` holds, when the fact has one, a fact that depends on it, with
    the answer the edit should propagate to (`propagated_answer`); otherwise it is `{}`, EasyEdit's
    empty value. `case_id` is the fact id, to join results back to the world.
    """
    output = refuse_unsafe_path(output_file, "output_file")
    if output.exists():
        if not overwrite:
            raise FileExistsError(
                f"`output_file` {output} already exists; pass overwrite=True (--overwrite) to replace"
            )
        if not _is_easyedit_file(output):
            raise FileExistsError(
                f"`output_file` {output} is not an EasyEdit export of ours (a JSON list of requests with `case_id`): "
                "refusing to replace it"
            )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}")
    source = _load_source(dataset, extra_splits=(split,))
    if split not in source.tables:
        raise ValueError(f"`split` {split!r} is not a fact split of `dataset`; available: {', '.join(source.tables)}")
    edits = source.split(split)
    retain = source.split("retain")
    if retain.num_rows == 0:
        raise ValueError("`dataset` has an empty retain split: no locality facts to pair with the edits")

    records = []
    locality = _locality_rows(edits, retain, seed)
    dependents = _dependents(source)
    retain_rows = retain.select(["prompt", "answer"]).to_pylist()
    for row, neighbour in zip(edits.to_pylist(), locality, strict=True):
        record = {
            "case_id": row["fact_id"],
            "prompt": row["prompt"],
            "subject": row["subject"],
            "target_new": row["target_new"],
            "ground_truth": row["answer"],
            "rephrase_prompt": row["paraphrased_question"],
            "locality": {
                "neighborhood": {
                    "prompt": retain_rows[neighbour]["prompt"],
                    "ground_truth": retain_rows[neighbour]["answer"],
                }
            },
            "portability": {},
        }
        if row["subject"] not in row["prompt"]:
            raise ValueError(f"fact {row['fact_id']}: subject {row['subject']!r} is not in prompt {row['prompt']!r}")
        for index, (prompt, answer) in enumerate(dependents.get(row["fact_id"], [])):
            record["portability"]["one_hop" if index == 0 else f"one_hop_{index + 1}"] = {
                "prompt": prompt,
                "ground_truth": answer,
            }
        records.append(record)

    with staged_output(output, None, overwrite=overwrite, parameter="output_file") as staging:
        staging.write_text(json.dumps(records, indent=2, ensure_ascii=False) + "\n")
    logger.info("wrote %d EasyEdit requests from %r to %s", len(records), split, output)
    return output


def _locality_rows(edits: pa.Table, retain: pa.Table, seed: int) -> list[int]:
    """Per edit, the index of a retain fact: same relation and another subject when possible."""
    rng = np.random.default_rng(seed)
    retain_relation = retain.column("relation_id").to_numpy()
    retain_subject = np.array(retain.column("subject").to_pylist(), dtype=object)
    by_relation = {relation: np.flatnonzero(retain_relation == relation) for relation in np.unique(retain_relation)}
    everything = np.arange(retain.num_rows)

    def other_subject(pool: np.ndarray, subject: str) -> int | None:
        # A few random draws almost always suffice (a subject has one fact per relation); scanning the
        # pool for every edit would cost O(edits x facts) on the `paper` world.
        for _ in range(8):
            pick = int(pool[rng.integers(len(pool))])
            if retain_subject[pick] != subject:
                return pick
        others = pool[retain_subject[pool] != subject]
        return int(others[rng.integers(len(others))]) if len(others) else None

    chosen = []
    relations, subjects = edits.column("relation_id").to_numpy(), edits.column("subject").to_pylist()
    for relation, subject in zip(relations, subjects, strict=True):
        pick = None
        if relation in by_relation:
            pick = other_subject(by_relation[relation], subject)
        if pick is None:
            pick = other_subject(everything, subject)
        # Only facts of this very subject are retained: any of them.
        chosen.append(pick if pick is not None else int(rng.integers(retain.num_rows)))
    return chosen


def _dependents(source: _Source) -> dict[int, list[tuple[str, str]]]:
    """fact id -> (prompt, propagated answer) of the trained facts that depend on it and propagate an edit."""
    dependents: dict[int, list[tuple[str, str]]] = {}
    for name in ("forget", "retain", "dependent"):
        if name not in source.tables:
            continue
        table = source.split(name)
        for base, prompt, answer in zip(
            table.column("depends_on").to_pylist(),
            table.column("prompt").to_pylist(),
            table.column("propagated_answer").to_pylist(),
            strict=True,
        ):
            if base >= 0 and answer:
                dependents.setdefault(base, []).append((prompt, answer))
    return dependents


# ---------------------------------------------------------------------------------------------- shared plumbing
def _is_easyedit_file(path: Path) -> bool:
    try:
        records = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return False
    return isinstance(records, list) and all(isinstance(r, dict) and "case_id" in r for r in records)


def _load_source(dataset: Any, tokenizer: Any | None = None, extra_splits: tuple[str, ...] = ()) -> _Source:
    """The fact splits of a generated folder or named config (via `data.open_dataset`) or of a DatasetDict.

    A folder or named config comes with its tokenizer, checked against the world; `train` is never read.
    """
    wanted = ("forget", "retain", "dependent", "holdout", "paraphrase", *extra_splits)
    if isinstance(dataset, (str, os.PathLike)):
        from behemoth_hf.data import open_dataset

        data = open_dataset(str(dataset))
        splits, tokenizer = data.fact_splits, tokenizer if tokenizer is not None else data.tokenizer
        metadata = {
            "config_name": data.config.name,
            "fingerprint": data.fingerprint,
            "generator_version": GENERATOR_VERSION,
        }
    elif isinstance(dataset, Mapping):
        splits, metadata = dataset, {}
    else:
        kind = type(dataset).__name__
        raise TypeError(f"`dataset` must be a folder path, a named config or a DatasetDict, got {kind}")
    tables = {split: splits[split].with_format("arrow")[:] for split in dict.fromkeys(wanted) if split in splits}
    for split in ("forget", "retain", "holdout"):
        if split not in tables:
            raise ValueError(f"`dataset` has no {split!r} split; found {', '.join(tables) or 'no fact split'}")
    for split, table in tables.items():
        missing = [column for column in _REQUIRED_COLUMNS if column not in table.column_names]
        if missing:
            raise ValueError(f"split {split!r} of `dataset` lacks the fact columns {missing}")
    return _Source(tables=tables, tokenizer=tokenizer, metadata=metadata)


# ---------------------------------------------------------------------------------------------- CLI
def export_command(argv: list[str]) -> int:
    """Write a generated world in the layout of OpenUnlearning (TOFU) or EasyEdit."""
    parser = argparse.ArgumentParser(prog="behemoth export", description=export_command.__doc__)
    _add_export_arguments(parser)
    args = parser.parse_args(argv)
    return args.handler(args)


def _add_export_arguments(export: argparse.ArgumentParser) -> None:
    formats = export.add_subparsers(dest="format", required=True, metavar="{openunlearning,easyedit}")

    unlearning = formats.add_parser("openunlearning", help="TOFU-shaped Parquet configs + model template tags")
    unlearning.add_argument("--dataset", required=True, metavar="DIR", help="`behemoth generate` folder or config")
    unlearning.add_argument("--output", required=True, metavar="DIR", help="export folder (must not exist)")
    unlearning.add_argument("--forget-name", help="name of the forget config (default forgetXX from the world)")
    unlearning.add_argument("--retain-name", help="name of the retain config (default retainYY)")
    unlearning.add_argument("--holdout-name", help="name of the holdout config (default holdoutXX)")
    unlearning.add_argument(
        "--oracle-eval", metavar="FILE", help="the oracle's BEHEMOTH_EVAL.json (`behemoth evaluate`)"
    )
    unlearning.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    unlearning.set_defaults(handler=export_openunlearning_main)

    easyedit = formats.add_parser("easyedit", help="a JSON list of EasyEdit edit requests")
    easyedit.add_argument("--dataset", required=True, metavar="DIR", help="`behemoth generate` folder or config name")
    easyedit.add_argument("--output", required=True, metavar="FILE", help="JSON file to write (must not exist)")
    easyedit.add_argument("--split", default="forget", help="fact split to turn into edits (default: forget)")
    easyedit.add_argument("--seed", type=int, default=0, help="seed of the locality fact choice (default: 0)")
    easyedit.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    easyedit.set_defaults(handler=export_easyedit_main)


def export_openunlearning_main(args: argparse.Namespace) -> int:
    """`behemoth export openunlearning`: the result line goes to stdout, like `behemoth generate`'s."""
    output = export_openunlearning(
        args.dataset,
        args.output,
        forget_name=args.forget_name,
        retain_name=args.retain_name,
        holdout_name=args.holdout_name,
        oracle_eval=args.oracle_eval,
        overwrite=args.overwrite,
    )
    print(
        f"wrote the OpenUnlearning export to {output}; OpenUnlearning configs in {output / OU_CONFIG_DIR} "
        f"(--config-dir; experiment={OU_EVAL_EXPERIMENT} or {OU_UNLEARN_EXPERIMENT})"
    )
    return 0


def export_easyedit_main(args: argparse.Namespace) -> int:
    """`behemoth export easyedit`: the result line goes to stdout."""
    output = export_easyedit(args.dataset, args.output, split=args.split, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote EasyEdit requests from {args.split!r} to {output}")
    return 0
