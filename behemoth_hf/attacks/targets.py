"""What every attack command is given: the models to attack, their dataset, the oracle and an output folder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from behemoth_hf.staging import refuse_unsafe_path


@dataclass
class AttackTargets:
    """Fields and checks shared by the arguments of `behemoth attack quantize|relearn` (documented there).
    Subclasses check their own values first, then call `super().__post_init__()`."""

    model: list[str] = field(metadata={"help": "unlearned model folder(s)"})
    dataset: str = field(metadata={"help": "their dataset: folder or named config"})
    output_dir: str = field(metadata={"help": "the attack's tables, plots and models", "aliases": ["--output"]})
    oracle: str | None = field(default=None, metadata={"help": "retain oracle model folder, attacked the same way"})

    def __post_init__(self):
        if isinstance(self.model, str):
            self.model = [self.model]
        for path in [*self.model, *([self.oracle] if self.oracle else [])]:
            if not (Path(path) / "config.json").is_file():
                raise FileNotFoundError(f"`model`/`oracle` {path} is not a saved model folder (no config.json)")
        refuse_unsafe_path(self.output_dir, "output_dir")
        if Path(self.output_dir).exists() and any(Path(self.output_dir).iterdir()):
            raise FileExistsError(f"`output_dir` {self.output_dir} is not empty; choose a new folder")

    def named_targets(self) -> dict[str, str]:
        """Each model folder by its folder name, then the oracle as `oracle` (the reference, listed last)."""
        if not self.model and not self.oracle:
            raise ValueError("give at least one `model` (or an `oracle`) to attack")
        targets = {Path(path).resolve().name: path for path in self.model}
        if len(targets) != len(self.model) or "oracle" in targets:
            raise ValueError(f"`model` folders need distinct names other than 'oracle', got {list(targets)}")
        if self.oracle:
            targets["oracle"] = self.oracle
        return targets
