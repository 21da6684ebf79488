"""The attacks an experiment file asks for (`attacks:`), as metrics added to a run's summary.

```yaml
attacks:
  probes: true                      # every `{split}_{template}_{greedy|choice}_accuracy`
  quantize: {bits: [8, 4]}          # `quantize_int{bits}_{metric}`
  relearn: {max_steps: 30}          # `relearn_{set}_{metric}` after the last step
```
`quantize` and `relearn` take the fields of `QuantizeArguments` / `RelearnArguments` other than the
model, dataset, oracle and output folder.

Each attack's folder is reused only for the same attack arguments, model and dataset (its key, `reuse.py`);
otherwise it is made again.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

from behemoth_hf.attacks.quantize import REPORTED, QuantizeArguments, run_quantize
from behemoth_hf.attacks.relearn import CURVE_METRICS, RelearnArguments, run_relearn
from behemoth_hf.probes import probe_metric_names
from behemoth_hf.reuse import argument_defaults, arguments_key, claim, identity


ATTACKS = ("probes", "quantize", "relearn")
_SET_BY_RUNNER = {"model", "dataset", "output_dir", "oracle"}
_VALIDATION_FOLDER = "/nonexistent/behemoth-attack-check"


def _arguments(name: str, options: dict[str, Any], **paths: Any):
    arguments_class = {"quantize": QuantizeArguments, "relearn": RelearnArguments}[name]
    fields = set(arguments_class.__dataclass_fields__) - _SET_BY_RUNNER
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} under `attacks.{name}`; allowed: {', '.join(sorted(fields))}")
    return arguments_class(**paths, **options)


def validate_attacks(attacks: dict[str, Any]) -> list[str]:
    """Check an `attacks:` mapping (before any work) and return the metric names it adds."""
    unknown = sorted(set(attacks) - set(ATTACKS))
    if unknown:
        raise ValueError(f"unknown attack(s) {unknown}; allowed: {', '.join(ATTACKS)}")
    names: list[str] = []
    if attacks.get("probes"):
        names += probe_metric_names()
    for name in ("quantize", "relearn"):
        if name not in attacks:
            continue
        options = attacks[name] or {}
        if not isinstance(options, dict):
            raise ValueError(f"`attacks.{name}` must be a mapping of its arguments, got {options!r}")
        args = _arguments(name, options, model=[], oracle=None, dataset="unused", output_dir=_VALIDATION_FOLDER)
        if name == "quantize":
            names += [f"quantize_int{bits}_{metric}" for bits in args.bits for metric in REPORTED]
        else:
            names += [f"relearn_{kind}_{metric}" for kind in args.relearn_data for metric in CURVE_METRICS]
    return names


def run_attacks(attacks: dict[str, Any], model: str, dataset: str, output: Path, *, is_oracle: bool = False) -> dict:
    """Run every requested attack on one model folder (outputs under `output`, reused when complete) and return
    the metrics it adds. `is_oracle` attacks the folder as the oracle (its reference role in the tables)."""
    from behemoth_hf.evaluation import EvaluationArguments, run_evaluation

    added: dict[str, float] = {}
    paths = {"model": [] if is_oracle else [model], "oracle": model if is_oracle else None, "dataset": dataset}
    name = "oracle" if is_oracle else Path(model).resolve().name
    # A named config (not a folder) is generated identically every time: its name is its identity.
    inputs = {"model": identity(model), "dataset": identity(dataset) if Path(dataset).is_dir() else dataset}
    if attacks.get("probes"):
        folder = output / "probes"
        summary_file = folder / Path(model).resolve().name / "BEHEMOTH_SUMMARY.json"
        if not claim(folder, summary_file, {"attack": "probes", **inputs}, f"probing {name}"):
            run_evaluation(EvaluationArguments(model=[model], dataset=dataset, output_dir=str(folder), probes=True))
        summary = json.loads(summary_file.read_text())
        added.update({metric: summary[metric] for metric in probe_metric_names() if metric in summary})
    if "quantize" in attacks:
        folder = output / "quantize"
        args = _arguments("quantize", attacks["quantize"] or {}, output_dir=_VALIDATION_FOLDER, **paths)
        key = {"attack": "quantize", **arguments_key(args), **inputs, "is_oracle": is_oracle}
        if not claim(folder, folder / "quantize.json", key, f"quantizing {name}", argument_defaults(args)):
            shutil.rmtree(folder, ignore_errors=True)  # an interrupted attempt for this same key
            run_quantize(replace(args, output_dir=str(folder)))
        for setting, values in json.loads((folder / "quantize.json").read_text())["models"][name].items():
            if setting != "full":
                added.update({f"quantize_{setting}_{metric}": value for metric, value in values.items()})
    if "relearn" in attacks:
        folder = output / "relearn"
        args = _arguments("relearn", attacks["relearn"] or {}, output_dir=_VALIDATION_FOLDER, **paths)
        key = {"attack": "relearn", **arguments_key(args), **inputs, "is_oracle": is_oracle}
        if not claim(folder, folder / "relearn.json", key, f"relearning {name}", argument_defaults(args)):
            shutil.rmtree(folder, ignore_errors=True)  # an interrupted attempt for this same key
            run_relearn(replace(args, output_dir=str(folder)))
        for kind, curve in relearn_curves(output, name).items():
            added.update({f"relearn_{kind}_{metric}": curve[metric][-1] for metric in CURVE_METRICS})
    return added


def relearn_curves(output: Path, name: str) -> dict[str, dict]:
    """The relearning curves `run_attacks` wrote under `output` for the model named `name` (oracle: "oracle")."""
    return json.loads((output / "relearn" / "relearn.json").read_text())["curves"][name]
