import importlib.util
from pathlib import Path

import datasets
import pytest


def _materialize_module():
    path = Path(__file__).parents[1] / "dataset_scripts" / "materialize.py"
    spec = importlib.util.spec_from_file_location("materialize", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_materialized_repo_loads_every_config_by_name(tmp_path):
    materialize = _materialize_module()
    folder = materialize.materialize(tmp_path / "repo", ["tiny", "nested"])
    assert datasets.get_dataset_config_names(str(folder)) == ["tiny", "nested"]
    nested = datasets.load_dataset(str(folder), "nested", split="dependent", cache_dir=str(tmp_path / "cache"))
    assert set(nested["dependency"]) == {"nested_inherited"}
    tiny = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))  # the default config
    assert tiny["forget"].num_rows == 12
    assert (folder / "nested" / "tokenizer" / "tokenizer.json").exists()
    with pytest.raises(FileExistsError, match="already exists"):
        materialize.materialize(folder, ["tiny"])
