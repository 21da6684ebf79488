import importlib.util
import json
from pathlib import Path

import datasets
import pytest

from behemoth_hf.config import NAMED_CONFIGS, make_config
from behemoth_hf.splits import fact_table, split_names
from behemoth_hf.world import World


# Every named config but `paper`, as `python dataset_scripts/materialize.py --output DIR` writes them; repeats=1
# keeps the train splits small (the layout and the card do not depend on it).
REPO_CONFIGS = [name for name in NAMED_CONFIGS if name != "paper"]
SMALL = {"repeats": 1}


def materialize_module():
    path = Path(__file__).parents[1] / "dataset_scripts" / "materialize.py"
    spec = importlib.util.spec_from_file_location("materialize", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("materialized") / "behemoth-hub"
    assert materialize_module().main(["--output", str(folder), "--set", "repeats=1", "--quiet"]) == 0
    return folder


def test_materialized_repo_loads_every_config_by_name(repo, tmp_path):
    assert datasets.get_dataset_config_names(str(repo)) == REPO_CONFIGS
    for name in REPO_CONFIGS:
        config = make_config(name, **SMALL)
        world = World.generate(config)
        metadata = json.loads((repo / name / "behemoth.json").read_text())
        assert metadata["fingerprint"] == config.fingerprint()
        loaded = datasets.load_dataset(str(repo), name, cache_dir=str(tmp_path / "cache"))
        assert list(loaded) == split_names(world), name
        assert {split: loaded[split].num_rows for split in loaded} == metadata["splits"]
        assert loaded["forget"].to_list() == fact_table(world, "forget").to_pylist(), name
    nested = datasets.load_dataset(str(repo), "nested", split="dependent", cache_dir=str(tmp_path / "cache"))
    assert set(nested["dependency"]) == {"nested_inherited"}
    assert (repo / "nested" / "tokenizer" / "tokenizer.json").exists()


def test_default_config_is_default_when_materialised_else_the_first(repo, tmp_path):
    unnamed = datasets.load_dataset(str(repo), split="forget", cache_dir=str(tmp_path / "cache"))
    assert unnamed.to_list() == fact_table(World.generate(make_config("default", **SMALL)), "forget").to_pylist()
    folder = materialize_module().materialize(tmp_path / "repo", ["tiny", "nested"], overrides=SMALL, progress=False)
    assert datasets.get_dataset_config_names(str(folder)) == ["tiny", "nested"]
    tiny = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert tiny["forget"].num_rows == 12


def test_bad_arguments_are_refused_before_anything_is_written(repo, tmp_path, capsys):
    materialize = materialize_module()
    with pytest.raises(FileExistsError, match="holds a finished output"):
        materialize.materialize(repo, ["tiny"])
    output = tmp_path / "out"
    for argv, message in [
        (["--set", "num_subject=3"], "unknown parameter"),
        (["--set", "num_objects=7"], "num_nested_objects"),  # fine for tiny, not for nested (10 per relation)
        (["--configs", "tiny", "tiny"], "names a config twice"),
    ]:
        assert materialize.main(["--output", str(output), "--quiet", *argv]) == 2
        assert message in capsys.readouterr().err
        assert list(tmp_path.iterdir()) == []
