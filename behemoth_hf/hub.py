"""Push generated datasets and trained models to the Hugging Face Hub (or whatever `HF_ENDPOINT` names).

A push is `create_repo(exist_ok=True)` + `upload_folder` of a folder that is already complete on disk:
the folder is uploaded as is, so what users load from the Hub is byte for byte what was checked
locally, and a push never writes to the folder. Everything that can be checked locally (the folder
looks like what it claims, the repo id, the token, offline mode) is checked before the first request,
and every failure of the Hub side comes back as one `HubError` line that says what to do.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any


logger = logging.getLogger(__name__)

DATASET_METADATA_FILE = "behemoth.json"  # generate.METADATA_FILE, not imported to keep this module light
EXPORT_METADATA_FILE = "behemoth_export.json"  # export.EXPORT_METADATA_FILE
CARD_FILE = "README.md"
RECORD_FILES = ("unlearning_record.json", "training_record.json")  # written by `behemoth unlearn` / `pretrain`
MODEL_CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"
# A transformers checkpoint holds one of these (the index files for sharded weights).
MODEL_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
# Which commands write a model card next to the weights (named in the error when it is missing).
MODEL_CARD_WRITERS = "`behemoth pretrain` (or `behemoth unlearn` / `behemoth edit`) when it saves the final model"
# Never uploaded: the resume states `behemoth pretrain` keeps under checkpoints/ (optimizer and RNG state, several
# times the size of the weights, useless to anyone loading the model) and interrupted staging folders.
IGNORE_PATTERNS = ["checkpoints/*", ".*.partial*", ".*.partial*/*"]
_LOGIN_HINT = "log in with `hf auth login` or set HF_TOKEN"
_TRANSPORT_ERRORS = {"TransportError", "NetworkError", "ConnectError", "TimeoutException", "ProxyError"}


class HubError(RuntimeError):
    """A push failed on the Hub side (auth, missing repo, unreachable endpoint, rejected upload).

    The message is one line naming the cause and the fix; local files are untouched.
    """


# ---------------------------------------------------------------------------------------------- public API
def push_dataset(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
) -> str:
    """Upload a Behemoth dataset folder to the dataset repo `repo_id` and return the commit URL.

    `folder` is what `behemoth generate`, `dataset_scripts/materialize.py` or `behemoth export
    openunlearning` wrote; its README.md `configs:` is what makes `load_dataset(repo_id, config)` work
    without a loading script, so every data file it names must exist before anything is sent.
    `revision` is a branch (created from `main` if missing). `token` defaults to HF_TOKEN or the
    `hf auth login` token.
    """
    root = _existing_folder(folder)
    _check_repo_args(repo_id, revision)
    summary = _check_dataset_folder(root)
    return _push(root, repo_id, "dataset", private=private, revision=revision, token=token, summary=summary)


def push_model(
    folder: str | os.PathLike,
    repo_id: str,
    *,
    private: bool = False,
    revision: str | None = None,
    token: str | None = None,
    evaluation: str | os.PathLike | None = None,
) -> str:
    """Upload a saved model folder (weights, config, tokenizer, model card) to `repo_id`; return the commit URL.

    The folder must load with `AutoModelForCausalLM`/`AutoTokenizer` as is, and must carry its model
    card: a card is the only place that says which world and method produced the weights, so a push
    without one is refused rather than filled with a placeholder. `evaluation` is the model's
    `BEHEMOTH_SUMMARY.json` from `behemoth evaluate`: its metrics join the uploaded card's `model-index`
    (the local card is not changed).
    """
    root = _existing_folder(folder)
    _check_repo_args(repo_id, revision)
    summary = _check_model_folder(root)
    if evaluation is None:
        return _push(root, repo_id, "model", private=private, revision=revision, token=token, summary=summary)
    card = _card_with_evaluation(root, Path(evaluation))
    with tempfile.TemporaryDirectory() as staging:
        # The upload folder: links to the model's files, and the card with its evaluation results.
        for path in root.iterdir():
            if path.is_file() and path.name != CARD_FILE:
                (Path(staging) / path.name).symlink_to(path.resolve())
        (Path(staging) / CARD_FILE).write_text(card)
        return _push(Path(staging), repo_id, "model", private=private, revision=revision, token=token, summary=summary)


def _card_with_evaluation(root: Path, evaluation: Path) -> str:
    """The folder's model card with the numeric metrics of `evaluation` added to its model-index."""
    from huggingface_hub import EvalResult, ModelCard

    if not evaluation.is_file():
        raise FileNotFoundError(f"`evaluation` {evaluation} does not exist: pass a BEHEMOTH_SUMMARY.json")
    scores = _read_json(evaluation)
    record = next((_read_json(root / name) for name in RECORD_FILES if (root / name).is_file()), {})
    config_name = record.get("dataset_config", "behemoth")
    card = ModelCard.load(root / CARD_FILE)
    if card.data.model_name is None:
        card.data.model_name = root.resolve().name
    card.data.eval_results = list(card.data.eval_results or []) + [
        EvalResult(
            task_type="text-generation",
            dataset_type="behemoth",
            dataset_name=f"Behemoth {config_name}",
            dataset_config=config_name,
            metric_type=name,
            metric_name=name,
            metric_value=float(value),
        )
        for name, value in scores.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    return str(card)


# ---------------------------------------------------------------------------------------------- local checks
def _existing_folder(folder: str | os.PathLike) -> Path:
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"`folder` must be a path, got {type(folder).__name__}")
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"`folder` {root} is not an existing folder")
    return root


def _check_repo_args(repo_id: str, revision: str | None) -> None:
    from huggingface_hub.utils import validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1:
        raise ValueError(f"`repo_id` must look like ORG/NAME (or USER/NAME), got {repo_id!r}")
    try:
        validate_repo_id(repo_id)
    except ValueError as error:
        raise ValueError(f"`repo_id` {repo_id!r} is not a valid Hub repo id: {_one_line(error)}") from None
    if revision is not None and (not isinstance(revision, str) or not revision.strip() or ".." in revision):
        raise ValueError(f"`revision` must be a branch name, got {revision!r}")


def _check_dataset_folder(root: Path) -> str:
    """Refuse folders that would not load from the Hub; return a commit summary."""
    from huggingface_hub import metadata_load

    card = root / CARD_FILE
    if not card.is_file():
        raise FileNotFoundError(
            f"no {CARD_FILE} in dataset folder {root}: push a folder written by `behemoth generate`, "
            "dataset_scripts/materialize.py or `behemoth export openunlearning` (they write the card)"
        )
    if (root / DATASET_METADATA_FILE).is_file():
        metadata = _read_json(root / DATASET_METADATA_FILE)
        if not list((root / "data").glob("*.parquet")):
            raise FileNotFoundError(f"dataset folder {root} has {DATASET_METADATA_FILE} but no data/*.parquet")
        summary = f"Upload Behemoth dataset {metadata.get('config_name')} (fingerprint {metadata.get('fingerprint')})"
    elif (root / EXPORT_METADATA_FILE).is_file():
        metadata = _read_json(root / EXPORT_METADATA_FILE)
        summary = f"Upload Behemoth {metadata.get('format', 'export')} export"
    elif worlds := sorted(path.parent.name for path in root.glob(f"*/{DATASET_METADATA_FILE}")):
        summary = f"Upload Behemoth datasets {', '.join(worlds)}"
    else:
        raise FileNotFoundError(
            f"{root} is not a Behemoth dataset folder: expected {DATASET_METADATA_FILE} and data/*.parquet "
            f"(`behemoth generate`), <config>/{DATASET_METADATA_FILE} (materialize.py) or {EXPORT_METADATA_FILE} "
            "(`behemoth export openunlearning`)"
        )
    configs = (metadata_load(card) or {}).get("configs")
    if not configs:
        raise ValueError(f"{card} has no YAML `configs:`; without it `load_dataset(repo_id, config)` cannot work")
    # datasets takes a config named `default` as the default, as well as any marked `default: true`; two of them
    # make every load_dataset / get_dataset_config_names of the repo fail.
    defaults = [c.get("config_name") for c in configs if c.get("default") or c.get("config_name") == "default"]
    if len(defaults) > 1:
        raise ValueError(
            f"{card} has several default configs ({', '.join(map(repr, defaults))}), so no config of the repo would "
            "load: regenerate the folder (materialize.py marks the config named `default` only)"
        )
    for config in configs:
        for pattern in _data_file_patterns(config.get("data_files")):
            if Path(pattern).is_absolute() or ".." in Path(pattern).parts or not any(root.glob(pattern)):
                raise FileNotFoundError(
                    f"config {config.get('config_name')!r} of {card} names data files {pattern!r} not found in {root}"
                )
    return summary


def _data_file_patterns(data_files: Any) -> list[str]:
    """The path patterns of one README `configs:` entry (a string, a list, or a list of {split, path})."""
    if data_files is None:
        return []
    if isinstance(data_files, (str, dict)):
        data_files = [data_files]
    patterns: list[str] = []
    for item in data_files:
        paths = item.get("path", []) if isinstance(item, dict) else item
        patterns += [paths] if isinstance(paths, str) else list(paths)
    return patterns


def _check_model_folder(root: Path) -> str:
    missing = [name for name in (MODEL_CONFIG_FILE, TOKENIZER_FILE) if not (root / name).is_file()]
    if not any((root / name).is_file() for name in MODEL_WEIGHT_FILES):
        missing.append(f"a weights file ({' or '.join(MODEL_WEIGHT_FILES)})")
    if missing:
        raise FileNotFoundError(
            f"{root} is not a saved model folder: missing {', '.join(missing)}; save the model with "
            "`model.save_pretrained(DIR)` and its tokenizer with `tokenizer.save_pretrained(DIR)`"
        )
    if not (root / CARD_FILE).is_file():
        raise FileNotFoundError(
            f"no {CARD_FILE} (model card) in {root}: it is written by {MODEL_CARD_WRITERS}; "
            "re-save the checkpoint with one of them (or add a card with huggingface_hub.ModelCard) before pushing"
        )
    model_type = _read_json(root / MODEL_CONFIG_FILE).get("model_type", "unknown architecture")
    return f"Upload Behemoth model ({model_type})"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not valid JSON: {_one_line(error)}") from None


# ---------------------------------------------------------------------------------------------- the push
def _endpoint() -> str:
    from huggingface_hub import constants

    # HF_ENDPOINT read now, not at import: a notebook or CI step may set it after huggingface_hub was imported.
    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def _push(
    root: Path, repo_id: str, repo_type: str, *, private: bool, revision: str | None, token: str | None, summary: str
) -> str:
    from huggingface_hub import HfApi, constants, get_token

    endpoint = _endpoint()
    if constants.HF_HUB_OFFLINE:
        raise HubError(f"HF_HUB_OFFLINE is set, so nothing can be pushed to {endpoint}: unset HF_HUB_OFFLINE to push")
    try:
        token = token or get_token()
    except Exception as error:  # e.g. a failed OIDC exchange: same remedy as no token
        raise HubError(f"could not read a Hugging Face token ({_one_line(error)}): {_LOGIN_HINT}") from error
    if not token:
        raise HubError(f"no Hugging Face token found for pushing to {endpoint}: {_LOGIN_HINT}")

    api = HfApi(endpoint=endpoint, token=token)
    where = f"{repo_type} repo {repo_id}" + (f" (revision {revision})" if revision else "")
    logger.info("pushing %s to %s at %s", root, where, endpoint)
    try:
        # private=None leaves an organisation's default visibility alone; an existing repo keeps its own.
        api.create_repo(repo_id, repo_type=repo_type, private=private or None, exist_ok=True)
        if revision is not None and revision != constants.DEFAULT_REVISION:
            api.create_branch(repo_id, repo_type=repo_type, branch=revision, exist_ok=True)
        commit = api.upload_folder(
            folder_path=str(root),
            repo_id=repo_id,
            repo_type=repo_type,
            revision=revision,
            commit_message=summary,
            ignore_patterns=list(IGNORE_PATTERNS),
        )
    except Exception as error:
        hub_error = _as_hub_error(error, where=where, endpoint=endpoint)
        if hub_error is None:
            raise
        raise hub_error from error
    logger.info("pushed %s: %s", where, commit.commit_url)
    return commit.commit_url


def _as_hub_error(error: Exception, *, where: str, endpoint: str) -> HubError | None:
    """One actionable line per kind of failure; None for anything unrecognised (re-raised unchanged).

    huggingface_hub wraps some failures (an LFS upload raises `RuntimeError(...) from HfHubHTTPError`),
    so the cause chain is searched for the first error that says what went wrong.
    """
    seen: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and cause not in seen:
        seen.append(cause)
        mapped = _map_one(cause, where=where, endpoint=endpoint)
        if mapped is not None:
            return mapped
        cause = cause.__cause__ or cause.__context__
    return None


def _map_one(error: BaseException, *, where: str, endpoint: str) -> HubError | None:
    from huggingface_hub.errors import HfHubHTTPError, LocalTokenNotFoundError, OfflineModeIsEnabled

    if isinstance(error, OfflineModeIsEnabled):
        return HubError(f"HF_HUB_OFFLINE is set, so nothing can be pushed to {endpoint}: unset HF_HUB_OFFLINE to push")
    if isinstance(error, LocalTokenNotFoundError):
        return HubError(f"no Hugging Face token found for pushing to {endpoint}: {_LOGIN_HINT}")
    if isinstance(error, HfHubHTTPError) and error.response is not None:
        status = error.response.status_code
        detail = _one_line(error.server_message or error.response.headers.get("X-Error-Message") or "")
        detail = f": {detail}" if detail else ""
        if status == 401:
            return HubError(f"{endpoint} refused the token for {where} (HTTP 401{detail}): {_LOGIN_HINT}")
        if status == 403:
            return HubError(
                f"the token may not write to {where} (HTTP 403{detail}): use a token with write access to that "
                f"namespace ({_LOGIN_HINT})"
            )
        if status == 404:
            return HubError(
                f"{where} was not found at {endpoint} (HTTP 404{detail}): check the repo id (--repo-id), the revision "
                "(--revision) and that HF_ENDPOINT points to a Hugging Face Hub"
            )
        return HubError(
            f"{endpoint} rejected the upload to {where} (HTTP {status}{detail}): fix what the Hub reports and push "
            "again; local files were not changed"
        )
    if _is_transport_error(error):
        return HubError(
            f"cannot reach the Hub at {endpoint} ({type(error).__name__}: {_one_line(error)}): check the network "
            "and HF_ENDPOINT (unset it for huggingface.co), and that HF_HUB_OFFLINE is not set"
        )
    if isinstance(error, ValueError):  # e.g. "LFS batch API returned errors" or a malformed server reply
        return HubError(
            f"{endpoint} rejected the upload to {where} ({_one_line(error)}); local files were not changed"
        )
    return None


def _is_transport_error(error: BaseException) -> bool:
    # httpx / httpx2 / requests transport errors, matched by name so no HTTP client is imported here.
    names = {cls.__name__ for cls in type(error).__mro__}
    return isinstance(error, (ConnectionError, TimeoutError)) or bool(names & _TRANSPORT_ERRORS)


def _one_line(error: object, limit: int = 300) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------- CLI
def push_command(argv: list[str]) -> int:
    """Upload a generated dataset or a trained model to the Hugging Face Hub."""
    parser = argparse.ArgumentParser(prog="behemoth push", description=push_command.__doc__)
    _add_push_arguments(parser)
    args = parser.parse_args(argv)
    return args.handler(args)


def _add_push_arguments(push: argparse.ArgumentParser) -> None:
    kinds = push.add_subparsers(dest="kind", required=True, metavar="{dataset,model}")
    helps = {
        "dataset": "a folder written by `behemoth generate`, materialize.py or `behemoth export openunlearning`",
        "model": "a saved model folder: config.json, weights, tokenizer.json and README.md (model card)",
    }
    for kind, help_text in helps.items():
        parser = kinds.add_parser(kind, help=f"push {help_text}")
        parser.add_argument("folder", metavar="DIR", help=help_text)
        parser.add_argument("--repo-id", required=True, metavar="ORG/NAME", help="Hub repo to create or update")
        parser.add_argument("--private", action="store_true", help="create the repo as private (if it is new)")
        parser.add_argument("--revision", metavar="REV", help="branch to push to, created from main if missing")
        if kind == "model":
            parser.add_argument("--evaluation", metavar="FILE", help="BEHEMOTH_SUMMARY.json to add to the card")
        parser.set_defaults(handler=push_main)


def push_main(args: argparse.Namespace) -> int:
    """`behemoth push`: upload, then print the commit URL (stdout, like the other commands' result line)."""
    if args.kind == "dataset":
        url = push_dataset(args.folder, args.repo_id, private=args.private, revision=args.revision)
    else:
        url = push_model(
            args.folder, args.repo_id, private=args.private, revision=args.revision, evaluation=args.evaluation
        )
    print(f"pushed {args.folder} to {args.repo_id}: {url}")
    return 0
