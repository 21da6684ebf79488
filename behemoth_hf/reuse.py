"""Reuse of finished outputs, keyed on what produced them (experiment, quickstart and attack caches).

A cached folder `X` made by a runner has its key, a flat JSON mapping of everything that produced it
(arguments, and the identity of every input folder), in `X.key.json` beside it. The key is written
before the work starts, so a partial folder is known to belong to that key and may be resumed. On
reuse the key asked for is compared with the one found: equal and finished, the folder is reused;
different, our own folder is removed and made again (with a warning naming what changed); a folder
with neither a key nor a finished record is not ours and is never touched. An argument the package gained after
a folder was made matches as long as it is left at its default, so upgrading does not make every run again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any


logger = logging.getLogger(__name__)

KEY_SUFFIX = ".key.json"


def identity(path: str | Path) -> str:
    """Identity of a finished input: a file's hash, or the hash of a folder's completion record (written last;
    it holds the run's wall time, so a model trained again never takes its predecessor's identity)."""
    from behemoth_hf.attacks.quantize import QUANTIZATION_RECORD
    from behemoth_hf.generate import METADATA_FILE
    from behemoth_hf.pretrain import RECORD_FILE as PRETRAIN_RECORD
    from behemoth_hf.unlearn.run import RECORD_FILE as UNLEARNING_RECORD

    path = Path(path)
    candidates = (
        [path]
        if path.is_file()
        else [path / name for name in (PRETRAIN_RECORD, UNLEARNING_RECORD, QUANTIZATION_RECORD, METADATA_FILE)]
    )
    for candidate in candidates:
        if candidate.is_file():
            return hashlib.sha256(candidate.read_bytes()).hexdigest()[:16]
    raise FileNotFoundError(f"{path} holds no finished output (no record file) to key a cache on")


def arguments_key(arguments: Any, paths: tuple[str, ...] = ("model", "dataset", "output_dir", "oracle")) -> dict:
    """A dataclass of arguments as JSON values, without its path fields (keys name their inputs by identity)."""
    values = {k: v for k, v in dataclasses.asdict(arguments).items() if k not in paths}
    return json.loads(json.dumps(values, sort_keys=True, default=str))


def argument_defaults(arguments: Any) -> dict:
    """The declared defaults of a dataclass of arguments, as JSON values (for `claim`'s `defaults`)."""
    defaults = {}
    for spec in dataclasses.fields(arguments):
        if spec.default is not dataclasses.MISSING:
            defaults[spec.name] = spec.default
        elif spec.default_factory is not dataclasses.MISSING:
            defaults[spec.name] = spec.default_factory()
    return json.loads(json.dumps(defaults, sort_keys=True, default=str))


def differences(found: dict[str, Any], asked: dict[str, Any]) -> str:
    """`name: found -> asked` for every entry that differs, for messages."""
    changed = [
        f"{name}: {found.get(name, '(absent)')!r} -> {asked.get(name, '(absent)')!r}"
        for name in sorted(set(found) | set(asked))
        if found.get(name) != asked.get(name)
    ]
    return "; ".join(changed)


def claim(folder: Path, done: Path, key: dict[str, Any], what: str, defaults: dict[str, Any] | None = None) -> bool:
    """True when `folder` is finished (`done` exists) for `key`: reuse it. Otherwise make way for producing it
    and return False: our folder made for another key is removed; a folder of unknown origin raises.

    An entry of `key` that the found key lacks but whose value is its `defaults` entry is an argument added to
    the package after the folder was made, left at the value that reproduces the old behaviour: it matches."""
    key = json.loads(json.dumps(key, sort_keys=True, default=str))
    key_file = folder.with_name(folder.name + KEY_SUFFIX)
    found = json.loads(key_file.read_text()) if key_file.is_file() else None
    if found is not None and defaults:
        added = {name for name in set(key) - set(found) if name in defaults and key[name] == defaults[name]}
        key = {name: value for name, value in key.items() if name not in added}
    if found == key:
        if done.exists():
            logger.info("%s: reusing %s", what, folder)
            return True
        logger.info("%s: continuing %s", what, folder)
        return False
    if folder.exists():
        if found is None and not done.exists():
            raise FileExistsError(
                f"{folder} exists but is no output of this runner (no {key_file.name}, not finished); "
                "move it away or choose another folder"
            )
        changed = differences(found, key) if found is not None else "made before outputs were keyed"
        logger.warning("%s: %s was made with other settings (%s); making it again", what, folder, changed)
        shutil.rmtree(folder)
    logger.info("%s ...", what)
    folder.parent.mkdir(parents=True, exist_ok=True)
    key_file.write_text(json.dumps(key, indent=2, sort_keys=True) + "\n")
    return False
