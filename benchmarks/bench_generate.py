"""Generation speed and peak memory on the original generator's measured configurations.

The original (IST-DASLab/behemoth create_data.py) made ~85k sentences/s on this machine kind, with
peak RSS growing ~139 B per sentence (173 MB at 1M sentences, 1.39 GB at 10M). Each case runs
`behemoth generate` in a fresh process and reads that process's peak RSS; sentences/s counts only
generation + writing (not the ~4 s of library imports, reported separately as wall time).

    python benchmarks/bench_generate.py                 # 1M and 10M sentences, plus repeats x10
    python benchmarks/bench_generate.py --paper         # also the 300M-sentence `paper` config

Results go to a new benchmarks/results/generate-<UTC time>.json (or `--output PATH`); `--update` merges
them into the committed benchmarks/results/generate.json, keeping the cases this run did not measure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from results_file import add_output_arguments, output_path, write_record


CASES = {
    # name: (config, overrides); holdout off so the sentence counts equal the original's.
    "1k_subjects_1M_sentences": ("default", dict(num_subjects=1000, num_relations=10, num_objects=100, repeats=100)),
    "10k_subjects_10M_sentences": (
        "default",
        dict(num_subjects=10000, num_relations=10, num_objects=100, repeats=100),
    ),
    "1k_subjects_repeats_1000_10M_sentences": (
        "default",
        dict(num_subjects=1000, num_relations=10, num_objects=100, repeats=1000),
    ),
}
PAPER_CASE = {"paper_300M_sentences": ("paper", {})}

WORKER = """
import json, resource, sys, time
from behemoth_hf.config import make_config
from behemoth_hf.generate import generate_dataset
name, overrides, output = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
import_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
config = make_config(name, holdout_fraction=0.0, **overrides)
start = time.perf_counter()
metadata_path = generate_dataset(config, output, progress=False) / "behemoth.json"
elapsed = time.perf_counter() - start
peak_rss_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
splits = json.loads(metadata_path.read_text())["splits"]
print(json.dumps({"seconds": elapsed, "splits": splits, "import_rss_kb": import_rss_kb, "peak_rss_kb": peak_rss_kb}))
"""


def run_case(config_name: str, overrides: dict, scratch: Path) -> dict:
    output = scratch / config_name
    start = time.perf_counter()
    completed = subprocess.run(
        [sys.executable, "-c", WORKER, config_name, json.dumps(overrides), str(output)],
        check=True,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    sentences = result["splits"]["train"]
    size = sum(path.stat().st_size for path in output.rglob("*") if path.is_file())
    return {
        "config": config_name,
        "overrides": overrides,
        "train_sentences": sentences,
        "generate_seconds": round(result["seconds"], 2),
        "process_wall_seconds": round(wall, 2),
        "sentences_per_second": round(sentences / result["seconds"]),
        "peak_rss_mb": round(result["peak_rss_kb"] / 1024, 1),
        "rss_after_imports_mb": round(result["import_rss_kb"] / 1024, 1),
        "output_bytes": size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--paper", action="store_true", help="also generate the 300M-sentence paper config")
    add_output_arguments(parser, "generate")
    args = parser.parse_args()
    path = output_path(parser, args, "generate")
    cases = {**CASES, **(PAPER_CASE if args.paper else {})}
    results = []
    for label, (config_name, overrides) in cases.items():
        # One scratch dir per case, deleted before the next, so disk never holds two outputs.
        with tempfile.TemporaryDirectory(dir=".") as scratch:
            result = {"case": label, **run_case(config_name, overrides, Path(scratch))}
        print(json.dumps(result))
        results.append(result)
    record = {
        "machine": f"{platform.machine()} {platform.processor()} cores={os.cpu_count()}",
        "python": platform.python_version(),
        "command": "python benchmarks/bench_generate.py" + (" --paper" if args.paper else ""),
        "baseline": "original create_data.py: ~85k sentences/s; 173 MB peak at 1M sentences, 1,386 MB at 10M",
        "results": results,
    }
    write_record(path, record, update=args.update, identity={"results": ("case",)})


if __name__ == "__main__":
    main()
