import datasets
import pytest

import behemoth_hf
from behemoth_hf.builder import Behemoth, source_hash
from behemoth_hf.config import make_config
from behemoth_hf.splits import fact_table, features
from behemoth_hf.world import World


def test_packaged_module_registration_survives_the_datasets_version():
    # `_PACKAGED_DATASETS_MODULES` and the factory are private datasets API: fail loudly if they move.
    from datasets.load import PackagedDatasetModuleFactory
    from datasets.packaged_modules import _PACKAGED_DATASETS_MODULES

    assert _PACKAGED_DATASETS_MODULES["behemoth"] == ("behemoth_hf.builder", source_hash())
    assert getattr(PackagedDatasetModuleFactory.get_module, "_behemoth_patched", False)
    behemoth_hf.register_builder()  # idempotent


def test_literal_load_dataset_from_an_empty_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a packaged module would otherwise scan the cwd for data files
    dataset = datasets.load_dataset("behemoth", "tiny", cache_dir=str(tmp_path / "cache"))
    assert list(dataset) == ["train", "forget", "retain", "paraphrase", "holdout"]
    world = World.generate(make_config("tiny"))
    assert dataset["forget"].to_list() == fact_table(world, "forget").to_pylist()
    assert dataset["train"].num_rows == 120 * 50
    assert dataset["forget"].features == features(make_config("tiny"))
    assert datasets.get_dataset_config_names("behemoth")[:2] == ["tiny", "default"]


def test_load_dataset_with_parameter_overrides(tmp_path):
    forget = datasets.load_dataset(
        "behemoth", "tiny", split="forget", num_subjects=60, num_perturbed=3, cache_dir=str(tmp_path)
    )
    assert forget.num_rows == 6 * 3
    assert len(forget[0]["perturbed_answer"]) == 3


def test_overrides_are_validated_before_any_work(tmp_path):
    with pytest.raises(ValueError, match=r"`num_nested_objects` \(3\) must divide `num_objects` \(10\)"):
        datasets.load_dataset("behemoth", "tiny", num_nested_objects=3, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"unknown parameter\(s\) \['subjects'\]"):
        datasets.load_dataset("behemoth", "tiny", subjects=3, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="unknown config 'huge'"):
        datasets.load_dataset("behemoth", "huge", cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"`correlation_strength` \(0.5\) needs correlated_pair=True"):
        datasets.load_dataset("behemoth", "tiny", correlation_strength=0.5, cache_dir=str(tmp_path))
    assert not any(tmp_path.rglob("*.arrow"))


@pytest.mark.parametrize("args, kwargs", [(("",), {}), ((), {}), (("",), {"repeats": 3})])
def test_a_config_name_is_required(tmp_path, args, kwargs):
    # datasets turns "" into "no name"; with a default config that silently built `default`.
    with pytest.raises(ValueError, match=r"a config name is required .*named configs: tiny, default"):
        datasets.load_dataset("behemoth", *args, cache_dir=str(tmp_path), **kwargs)
    assert not any(tmp_path.rglob("*.arrow"))


def test_builder_class_used_directly(tmp_path):
    builder = Behemoth(config_name="nested", num_subjects=30, repeats=2, cache_dir=str(tmp_path))
    builder.download_and_prepare()
    dataset = builder.as_dataset()
    assert "dependent" in dataset
    assert set(dataset["dependent"]["dependency"]) == {"nested_inherited"}
    # The cache directory is keyed on the generation code's hash.
    assert source_hash() in builder.cache_dir
