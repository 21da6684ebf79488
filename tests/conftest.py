"""Test environment: never touch the Hub, isolate every HF cache. Set before any HF import reads them."""

import os
import shutil
import tempfile
from pathlib import Path


SCRATCH_CACHES = {
    "HF_HOME": tempfile.mkdtemp(prefix="behemoth-test-hf-home-"),
    "BEHEMOTH_CACHE": tempfile.mkdtemp(prefix="behemoth-test-cache-"),
}
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.update(SCRATCH_CACHES)
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# One intra-op thread, whatever the machine or the caller's OMP_NUM_THREADS: the CPU backward of LayerNorm sums its
# weight gradient in per-thread pieces, so 1 and 2 threads differ in the last bit at step 1, and Adam grows that to
# two different tiny models by the end of a run (measured: 0.1 apart in weights after 188 steps). With the count
# pinned, every training outcome in these tests is the same on every machine (and a shared CI box is not
# oversubscribed). Subprocesses the tests start inherit it.
os.environ["OMP_NUM_THREADS"] = "1"
os.environ["MKL_NUM_THREADS"] = "1"

import pytest  # noqa: E402

from behemoth_hf.config import make_config  # noqa: E402
from behemoth_hf.world import World  # noqa: E402


@pytest.fixture(scope="session")
def tiny_world() -> World:
    return World.generate(make_config("tiny"))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    """The tiny world's model pretrained by trainer_configs/pretrain_tiny.yaml, shared by the tests that unlearn or
    edit it (each writes its own outputs elsewhere)."""
    from behemoth_hf.cli import main

    output = tmp_path_factory.mktemp("base") / "tiny"
    recipe = Path(__file__).parents[1] / "trainer_configs" / "pretrain_tiny.yaml"
    assert main(["pretrain", "--config", str(recipe), "--dataset", "tiny", "--output", str(output)]) == 0
    return str(output)


@pytest.fixture(scope="session")
def data():
    """The tiny world, opened as the commands open it."""
    from behemoth_hf.data import open_dataset

    return open_dataset("tiny")


def pytest_sessionfinish(session, exitstatus) -> None:
    """The caches above are this session's scratch (tens of MB each): left behind, every run adds to /tmp."""
    for folder in SCRATCH_CACHES.values():
        shutil.rmtree(folder, ignore_errors=True)
