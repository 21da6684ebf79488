import json
import multiprocessing
import os

import datasets
import pytest
from transformers import AutoTokenizer

import behemoth_hf.generate as generate_module
from behemoth_hf.cli import main
from behemoth_hf.config import make_config
from behemoth_hf.generate import generate_dataset
from behemoth_hf.lexicon import Lexicon
from behemoth_hf.splits import arrow_schema, features
from behemoth_hf.tokenizer import build_tokenizer, save_tokenizer, write_tokenizer


def _files(root):
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


def test_cli_generate_writes_a_loadable_dataset(tmp_path, capsys):
    output = tmp_path / "tiny"
    assert main(["generate", "--config", "tiny", "--set", "repeats=3", "--output", str(output), "--quiet"]) == 0
    assert "fingerprint" in capsys.readouterr().out
    metadata = json.loads((output / "behemoth.json").read_text())
    assert metadata["world"]["repeats"] == 3 and metadata["seed"] == 0
    assert metadata["splits"]["train"] == 120 * 3
    assert set(metadata["files"]) >= {"README.md", "tokenizer/tokenizer.json", "data/train-00000-of-00001.parquet"}

    dataset = datasets.load_dataset(str(output), cache_dir=str(tmp_path / "cache"))
    assert {split: dataset[split].num_rows for split in dataset} == metadata["splits"]
    assert datasets.get_dataset_config_names(str(output)) == ["tiny"]
    tokenizer = AutoTokenizer.from_pretrained(output / "tokenizer")
    row = dataset["forget"][0]
    assert tokenizer.decode(tokenizer(row["text"]).input_ids) == row["text"]


def test_same_config_and_seed_give_identical_bytes(tmp_path):
    config = make_config("qa", num_subjects=50, repeats=4, paraphrase_fraction=0.2)
    first = _files(generate_dataset(config, tmp_path / "a", progress=False))
    second = _files(generate_dataset(config, tmp_path / "b", progress=False))
    assert first == second
    third = _files(
        generate_dataset(make_config("qa", num_subjects=50, repeats=4, seed=1), tmp_path / "c", progress=False)
    )
    assert third["data/train-00000-of-00001.parquet"] != first["data/train-00000-of-00001.parquet"]


def test_existing_output_is_refused_before_any_work(tmp_path):
    output = tmp_path / "out"
    output.mkdir()
    (output / "keep.txt").write_text("mine")
    assert main(["generate", "--config", "tiny", "--output", str(output), "--quiet"]) == 2
    assert [p.name for p in output.iterdir()] == ["keep.txt"]
    assert (
        main(
            [
                "generate",
                "--config",
                "tiny",
                "--set",
                "num_objects=7",
                "--set",
                "num_nested_objects=2",
                "--output",
                str(tmp_path / "bad"),
                "--quiet",
            ]
        )
        == 2
    )
    assert not (tmp_path / "bad").exists()


def test_interrupted_generate_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def fail(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(generate_module, "write_tokenizer", fail)  # one of the files to write
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(make_config("tiny"), tmp_path / "out", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_train_is_sharded_by_rows(tmp_path, monkeypatch):
    monkeypatch.setattr(generate_module, "TRAIN_SHARD_ROWS", 2500)
    output = generate_dataset(make_config("tiny"), tmp_path / "out", progress=False)
    shards = sorted(p.name for p in (output / "data").glob("train-*.parquet"))
    assert shards == [f"train-0000{i}-of-00003.parquet" for i in range(3)]
    train = datasets.load_dataset(str(output), split="train", cache_dir=str(tmp_path / "cache"))
    assert train.num_rows == 6000
    # Concatenated shards are exactly the unsharded corpus.
    reference = generate_dataset(make_config("tiny"), tmp_path / "ref", progress=False)
    monkeypatch.undo()
    unsharded = datasets.load_dataset(str(reference), split="train", cache_dir=str(tmp_path / "cache2"))
    assert train["text"] == unsharded["text"]


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="a second worker needs fork")
def test_one_and_two_workers_write_identical_bytes(tmp_path, monkeypatch):
    # Small shards, so that both processes write train shards (and fact splits, tokenizer and card between them).
    monkeypatch.setattr(generate_module, "TRAIN_SHARD_ROWS", 700)
    config = make_config("qa", num_subjects=60, repeats=6, paraphrase_fraction=0.2)
    one = generate_dataset(config, tmp_path / "one", progress=False, workers=1)
    two = generate_dataset(config, tmp_path / "two", progress=False, workers=2)
    assert _files(one) == _files(two)
    metadata = json.loads((two / "behemoth.json").read_text())
    assert metadata["splits"]["train"] == (60 + 30) * 5 * 6
    assert [name for name in metadata["files"] if name.startswith("data/train")] == [
        f"data/train-0000{i}-of-00004.parquet" for i in range(4)
    ]
    train = datasets.load_dataset(str(two), split="train", cache_dir=str(tmp_path / "cache"))
    assert train.num_rows == metadata["splits"]["train"]


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="a second worker needs fork")
@pytest.mark.parametrize("failure", ["error", "death"])
def test_a_failing_worker_fails_the_run_and_leaves_nothing(tmp_path, monkeypatch, failure):
    parent, hash_file = os.getpid(), generate_module.sha256_file

    def fail_in_worker(path):
        if os.getpid() != parent:
            if failure == "death":
                os._exit(3)
            raise ValueError("disk trouble in the worker")
        return hash_file(path)

    monkeypatch.setattr(generate_module, "sha256_file", fail_in_worker)
    expected = ValueError if failure == "error" else RuntimeError
    match = "disk trouble in the worker" if failure == "error" else r"worker process died \(exit code 3\)"
    with pytest.raises(expected, match=match) as raised:
        generate_dataset(make_config("tiny"), tmp_path / "out", progress=False, workers=2)
    if failure == "error":  # the worker's own traceback comes along
        assert "fail_in_worker" in str(raised.value.__cause__)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("workers", [0, 3, 1.0, True])
def test_bad_worker_counts_are_refused_before_any_work(tmp_path, workers):
    with pytest.raises((ValueError, TypeError), match="`workers`"):
        generate_dataset(make_config("tiny"), tmp_path / "out", progress=False, workers=workers)
    assert list(tmp_path.iterdir()) == []


def test_cli_refuses_a_bad_worker_count(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["generate", "--config", "tiny", "--workers", "3", "--output", str(tmp_path / "out")])
    assert exited.value.code == 2 and "--workers" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_tokenizer_files_are_those_transformers_saves(tmp_path):
    # `generate` writes them without transformers; they must stay what `save_pretrained` writes (and loads).
    for config in (make_config("tiny"), make_config("nested", num_subjects=1200)):
        lexicon = Lexicon(config)
        save_tokenizer(build_tokenizer(lexicon), tmp_path / config.name / "transformers")
        write_tokenizer(lexicon, tmp_path / config.name / "generate")
        assert _files(tmp_path / config.name / "generate") == _files(tmp_path / config.name / "transformers")


def test_arrow_schema_is_the_features_schema():
    for num_perturbed in (3, 5):
        config = make_config("tiny", num_perturbed=num_perturbed)
        assert arrow_schema(config).equals(features(config).arrow_schema, check_metadata=True)
