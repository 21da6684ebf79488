"""Materialise named Behemoth configs as one Parquet dataset repo, and optionally push it to the Hub.

    python dataset_scripts/materialize.py --output behemoth-hub                       # every config but paper
    python dataset_scripts/materialize.py --output behemoth-hub --configs tiny default
    python dataset_scripts/materialize.py --output behemoth-hub --push-to-hub ORG/behemoth [--private]

The folder holds `<config>/data/<split>-*.parquet`, `<config>/tokenizer/`, `<config>/behemoth.json`
and one README.md whose YAML `configs:` lists every config, so that
`load_dataset("<folder or ORG/behemoth>", "default")` works without any loading script (datasets >= 4
runs none). The token comes from `HF_TOKEN` / `huggingface-cli login`; `HF_ENDPOINT` is honoured.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from behemoth_hf.config import NAMED_CONFIGS, make_config
from behemoth_hf.generate import METADATA_FILE, generate_dataset, write_dataset_card
from behemoth_hf.staging import staged_directory


def materialize(output: Path, config_names: list[str], *, overwrite: bool = False) -> Path:
    if output.exists() and not overwrite:
        raise FileExistsError(f"`--output` {output} already exists; pass --overwrite to replace it")
    configs = [make_config(name) for name in config_names]  # validate every name before writing anything
    with staged_directory(output) as staging:
        entries = []
        for config in configs:
            generate_dataset(config, staging / config.name)
            rows = json.loads((staging / config.name / METADATA_FILE).read_text())["splits"]
            (staging / config.name / "README.md").unlink()  # one card at the root describes every config
            entries.append((config, rows, config.name))
        write_dataset_card(staging, entries)
    return output


def push(folder: Path, repo_id: str, *, private: bool = False) -> str:
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="dataset")
    return commit.commit_url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_configs = [name for name in NAMED_CONFIGS if name != "paper"]
    parser.add_argument("--output", required=True, type=Path)
    parser.add_argument("--configs", nargs="+", default=default_configs, choices=list(NAMED_CONFIGS))
    parser.add_argument("--overwrite", action="store_true")
    parser.add_argument("--push-to-hub", metavar="REPO_ID")
    parser.add_argument("--private", action="store_true")
    args = parser.parse_args()
    folder = materialize(args.output, args.configs, overwrite=args.overwrite)
    print(f"materialised {', '.join(args.configs)} in {folder}")
    if args.push_to_hub:
        print(f"pushed: {push(folder, args.push_to_hub, private=args.private)}")


if __name__ == "__main__":
    main()
