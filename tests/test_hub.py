"""Pushes against the loopback Hub stand-in: round trips through load_dataset/from_pretrained, and failures."""

import socket
from pathlib import Path

import datasets
import huggingface_hub
import huggingface_hub.hf_api
import pytest
import torch
from huggingface_hub import constants
from transformers import AutoModelForCausalLM, AutoTokenizer, GPTNeoXConfig, GPTNeoXForCausalLM

from behemoth_hf.cli import main
from behemoth_hf import hub
from behemoth_hf.config import make_config
from behemoth_hf.export import export_openunlearning
from behemoth_hf.generate import generate_dataset
from behemoth_hf.hub import HubError, push_dataset, push_model
from hub_standin import VALID_TOKEN, HubStandIn
from test_dataset_scripts import REPO_CONFIGS, materialize_module


# ---------------------------------------------------------------------------------------------- fixtures
def _point_clients_at(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    """Every constant huggingface_hub, transformers and datasets read the endpoint/offline mode from."""
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the stand-in speaks LFS "basic", not Xet
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.hf_api.api, "endpoint", url)
    monkeypatch.setattr(datasets.config, "HF_ENDPOINT", url)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", url)
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)


@pytest.fixture
def hub_server(monkeypatch):
    with HubStandIn() as server:
        _point_clients_at(monkeypatch, server.url)
        yield server


@pytest.fixture
def auth_hub_server(monkeypatch):
    with HubStandIn(require_auth=True) as server:
        _point_clients_at(monkeypatch, server.url)
        yield server


@pytest.fixture(scope="module")
def dataset_folder(tmp_path_factory) -> Path:
    return generate_dataset(make_config("tiny", repeats=2), tmp_path_factory.mktemp("data") / "tiny", progress=False)


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory, dataset_folder) -> Path:
    tokenizer = AutoTokenizer.from_pretrained(dataset_folder / "tokenizer")
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model") / "tiny-model"
    GPTNeoXForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "README.md").write_text("---\nlicense: apache-2.0\ntags:\n- behemoth\n---\n\n# A tiny test model\n")
    return folder


def _tree_bytes(root: Path) -> dict[str, bytes]:
    """Every entry under `root` (hidden ones too) with its bytes: a push must leave this unchanged."""
    entries = sorted(root.rglob("*"))
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else b"<dir>" for p in entries}


# ---------------------------------------------------------------------------------------------- round trips
def test_pushed_dataset_loads_by_config_name_with_the_local_rows(hub_server, dataset_folder, tmp_path):
    before = _tree_bytes(dataset_folder)
    url = push_dataset(dataset_folder, "org/behemoth-tiny")
    assert url.startswith(f"{hub_server.url}/datasets/org/behemoth-tiny/commit/")
    assert _tree_bytes(dataset_folder) == before
    remote_files = hub_server.files("dataset", "org/behemoth-tiny")
    assert {path: remote_files[path] for path in before if before[path] != b"<dir>"} == {
        path: content for path, content in before.items() if content != b"<dir>"
    }

    remote = datasets.load_dataset("org/behemoth-tiny", "tiny", cache_dir=str(tmp_path / "remote"))
    local = datasets.load_dataset(str(dataset_folder), "tiny", cache_dir=str(tmp_path / "local"))
    assert list(remote) == list(local) == ["train", "forget", "retain", "paraphrase", "holdout"]
    for split in local:
        assert remote[split].features == local[split].features
        assert remote[split].to_list() == local[split].to_list()


def test_pushed_openunlearning_export_loads_from_the_hub(hub_server, dataset_folder, tmp_path):
    export = export_openunlearning(dataset_folder, tmp_path / "ou")
    push_dataset(export, "org/behemoth-tiny-tofu")
    forget = datasets.load_dataset("org/behemoth-tiny-tofu", name="forget10", split="train", cache_dir=str(tmp_path))
    assert forget.column_names == ["question", "answer"] and forget.num_rows == 12


def test_pushed_model_loads_with_identical_logits(hub_server, model_folder, tmp_path):
    before = _tree_bytes(model_folder)
    push_model(model_folder, "org/behemoth-tiny-model", private=True)
    assert _tree_bytes(model_folder) == before
    assert hub_server.repos[("model", "org/behemoth-tiny-model")].private

    model = AutoModelForCausalLM.from_pretrained("org/behemoth-tiny-model", cache_dir=str(tmp_path)).eval()
    tokenizer = AutoTokenizer.from_pretrained("org/behemoth-tiny-model", cache_dir=str(tmp_path))
    local_model = AutoModelForCausalLM.from_pretrained(model_folder).eval()
    local_tokenizer = AutoTokenizer.from_pretrained(model_folder)
    text = "SS Baba ek ul RR redi ob OO robi ."
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert ids.tolist() == local_tokenizer(text, return_tensors="pt").input_ids.tolist()
    assert tokenizer.unk_token_id not in ids[0].tolist()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, local_model(ids).logits)


def test_cli_push_model_to_a_new_branch(hub_server, model_folder, tmp_path, capsys):
    assert hub.push_command(["model", str(model_folder), "--repo-id", "org/tiny-model", "--revision", "v1"]) == 0
    assert "org/tiny-model" in capsys.readouterr().out
    assert "model.safetensors" not in hub_server.files("model", "org/tiny-model", "main")
    assert "model.safetensors" in hub_server.files("model", "org/tiny-model", "v1")
    model = AutoModelForCausalLM.from_pretrained("org/tiny-model", revision="v1", cache_dir=str(tmp_path))
    assert model.config.hidden_size == 32


def test_subcommand_parser_and_resume_state_left_out(hub_server, model_folder, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for path in model_folder.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "checkpoints" / "step-10").mkdir(parents=True)
    (folder / "checkpoints" / "step-10" / "optimizer.bin").write_bytes(b"resume state")
    (folder / ".final.partial-123").mkdir()
    (folder / ".final.partial-123" / "model.safetensors").write_bytes(b"half written")
    assert main(["push", "model", str(folder), "--repo-id", "org/run", "--private"]) == 0
    assert set(hub_server.files("model", "org/run")) == {".gitattributes", *(p.name for p in model_folder.iterdir())}
    assert hub_server.repos[("model", "org/run")].private


def test_materialized_multi_config_repo_loads_every_config_from_the_hub(hub_server, tmp_path):
    """The repo `python dataset_scripts/materialize.py --output DIR --push-to-hub ORG/NAME` uploads (repeats=1)."""
    folder = tmp_path / "repo"
    argv = ["--output", str(folder), "--set", "repeats=1", "--quiet", "--push-to-hub", "org/behemoth"]
    assert materialize_module().main(argv) == 0
    assert datasets.get_dataset_config_names("org/behemoth") == REPO_CONFIGS
    for name in REPO_CONFIGS:
        remote = datasets.load_dataset("org/behemoth", name, cache_dir=str(tmp_path / "remote"))
        local = datasets.load_dataset(str(folder), name, cache_dir=str(tmp_path / "local"))
        assert list(remote) == list(local), name
        for split in local:
            assert remote[split].to_list() == local[split].to_list(), (name, split)
    unnamed = datasets.load_dataset("org/behemoth", split="forget", cache_dir=str(tmp_path / "remote"))
    assert (
        unnamed.to_list()
        == datasets.load_dataset(str(folder), "default", split="forget", cache_dir=str(tmp_path / "local")).to_list()
    )


# ---------------------------------------------------------------------------------------------- failures
def test_missing_token_is_refused_before_any_request(auth_hub_server, dataset_folder, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    with pytest.raises(HubError, match=r"no Hugging Face token .*log in with `hf auth login` or set HF_TOKEN"):
        push_dataset(dataset_folder, "org/behemoth-tiny")
    assert auth_hub_server.requests == []


def test_rejected_token_is_a_401_with_the_login_hint(auth_hub_server, dataset_folder, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_valid_token")
    before = _tree_bytes(dataset_folder)
    with pytest.raises(HubError, match=r"HTTP 401.*log in with `hf auth login` or set HF_TOKEN"):
        push_dataset(dataset_folder, "org/behemoth-tiny")
    assert _tree_bytes(dataset_folder) == before
    assert auth_hub_server.repos == {}
    # The same push with a valid token passes the auth check.
    monkeypatch.setenv("HF_TOKEN", VALID_TOKEN)
    push_dataset(dataset_folder, "org/behemoth-tiny")


def test_not_found_is_a_404_naming_repo_id_and_endpoint(hub_server, dataset_folder):
    hub_server.fail_next(404, r"/preupload/", error_code="RepoNotFound", message="Repository not found")
    before = _tree_bytes(dataset_folder)
    expected = r"dataset repo org/gone was not found at http://127\.0\.0\.1:\d+ \(HTTP 404.*repo id"
    with pytest.raises(HubError, match=expected):
        push_dataset(dataset_folder, "org/gone")
    assert _tree_bytes(dataset_folder) == before


@pytest.mark.parametrize(
    ("status", "route", "message"),
    [(422, r"/commit/", "Invalid metadata in README.md"), (413, r"^/lfs-upload/", "Payload Too Large")],
)
def test_rejected_upload_names_the_status_and_server_message(hub_server, model_folder, status, route, message):
    hub_server.fail_next(status, route, message=message)
    before = _tree_bytes(model_folder)
    with pytest.raises(HubError, match=rf"rejected the upload to model repo org/m \(HTTP {status}: {message}\)"):
        push_model(model_folder, "org/m")
    assert _tree_bytes(model_folder) == before
    assert "model.safetensors" not in hub_server.files("model", "org/m")


def test_connection_refused_names_hf_endpoint_and_offline_mode(monkeypatch, dataset_folder):
    with socket.socket() as probe:  # a port that was free a moment ago and that nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    _point_clients_at(monkeypatch, f"http://127.0.0.1:{port}")
    before = _tree_bytes(dataset_folder)
    expected = rf"cannot reach the Hub at http://127\.0\.0\.1:{port} .*HF_ENDPOINT.*HF_HUB_OFFLINE"
    with pytest.raises(HubError, match=expected):
        push_dataset(dataset_folder, "org/behemoth-tiny")
    assert _tree_bytes(dataset_folder) == before


def test_offline_mode_is_refused_before_any_request(hub_server, dataset_folder, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(HubError, match="HF_HUB_OFFLINE is set.*unset HF_HUB_OFFLINE"):
        push_dataset(dataset_folder, "org/behemoth-tiny")
    assert hub_server.requests == []


# ---------------------------------------------------------------------------------------------- local validation
def test_bad_arguments_fail_before_any_request(hub_server, dataset_folder, model_folder, tmp_path):
    with pytest.raises(FileNotFoundError, match="`folder`"):
        push_dataset(tmp_path / "missing", "org/x")
    with pytest.raises(ValueError, match="`repo_id`"):
        push_dataset(dataset_folder, "no-namespace")
    with pytest.raises(ValueError, match="`repo_id`"):
        push_dataset(dataset_folder, "org/bad name")
    with pytest.raises(ValueError, match="`revision`"):
        push_model(model_folder, "org/x", revision=" ")
    with pytest.raises(FileNotFoundError, match="is not a Behemoth dataset folder"):
        push_dataset(model_folder, "org/x")
    with pytest.raises(FileNotFoundError, match="is not a saved model folder: missing config.json"):
        push_model(dataset_folder, "org/x")
    assert hub_server.requests == []


def test_dataset_folder_must_have_a_card_whose_files_exist(hub_server, dataset_folder, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("behemoth.json",):
        (broken / name).write_bytes((dataset_folder / name).read_bytes())
    (broken / "data").mkdir()
    (broken / "data" / "forget-00000-of-00001.parquet").write_bytes(
        (dataset_folder / "data" / "forget-00000-of-00001.parquet").read_bytes()
    )
    with pytest.raises(FileNotFoundError, match="no README.md in dataset folder"):
        push_dataset(broken, "org/x")
    (broken / "README.md").write_bytes((dataset_folder / "README.md").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"config 'tiny' .* names data files 'data/train-\*\.parquet'"):
        push_dataset(broken, "org/x")
    assert hub_server.requests == []


def test_dataset_card_with_two_default_configs_is_refused(hub_server, dataset_folder, tmp_path):
    folder = tmp_path / "two-defaults"
    folder.mkdir()
    for path in ("behemoth.json", "data/forget-00000-of-00001.parquet"):
        (folder / path).parent.mkdir(exist_ok=True)
        (folder / path).write_bytes((dataset_folder / path).read_bytes())
    configs = ["  - split: forget", "    path: data/forget-*.parquet"]
    lines = ["---", "configs:", "- config_name: tiny", "  default: true", "  data_files:", *configs]
    (folder / "README.md").write_text(
        "\n".join([*lines, "- config_name: default", "  data_files:", *configs, "---", ""])
    )
    with pytest.raises(ValueError, match=r"several default configs \('tiny', 'default'\)"):
        push_dataset(folder, "org/x")
    assert hub_server.requests == []


def test_model_without_card_is_refused_naming_the_command_that_writes_it(hub_server, model_folder, tmp_path):
    folder = tmp_path / "no-card"
    folder.mkdir()
    for path in model_folder.iterdir():
        if path.name != "README.md":
            (folder / path.name).write_bytes(path.read_bytes())
    with pytest.raises(FileNotFoundError, match=r"no README.md \(model card\) .*`behemoth pretrain`"):
        push_model(folder, "org/x")
    (folder / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="missing a weights file"):
        push_model(folder, "org/x")
    assert hub_server.requests == []


def test_model_push_adds_the_evaluation_to_the_card_model_index(hub_server, model_folder, tmp_path):
    from huggingface_hub import ModelCard

    summary = tmp_path / "BEHEMOTH_SUMMARY.json"
    summary.write_text('{"forget_accuracy": 0.02, "retain_accuracy": 0.97, "forget_quality": null}')
    before = _tree_bytes(model_folder)
    assert main(["push", "model", str(model_folder), "--repo-id", "org/evaluated", "--evaluation", str(summary)]) == 0
    assert _tree_bytes(model_folder) == before  # the local card is untouched
    remote = hub_server.files("model", "org/evaluated")
    card_path = tmp_path / "README.md"
    card_path.write_bytes(remote["README.md"])
    results = {r.metric_type: r.metric_value for r in ModelCard.load(card_path).data.eval_results}
    assert results == {"forget_accuracy": 0.02, "retain_accuracy": 0.97}
    assert remote["model.safetensors"] == (model_folder / "model.safetensors").read_bytes()
