"""The README's examples run as written, in the order written."""

from __future__ import annotations

import re
from pathlib import Path


README = Path(__file__).resolve().parents[1] / "README.md"


def _section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_loading_a_world_examples_run_in_order(tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", _section("Loading a world"), flags=re.DOTALL)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own documentation
    assert namespace["forget"].num_rows > 0
    assert namespace["dataset"]["forget"].num_rows == namespace["forget"].num_rows
    assert (
        namespace["tokenizer"].get_vocab()
        == namespace["build_tokenizer"](namespace["Lexicon"](namespace["make_config"]("default"))).get_vocab()
    )
