"""Test environment: never touch the Hub, isolate every HF cache. Set before any HF import reads them."""

import os
import tempfile


os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="behemoth-test-hf-home-")
os.environ["BEHEMOTH_CACHE"] = tempfile.mkdtemp(prefix="behemoth-test-cache-")
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import pytest  # noqa: E402

from behemoth_hf.config import make_config  # noqa: E402
from behemoth_hf.world import World  # noqa: E402


@pytest.fixture(scope="session")
def tiny_world() -> World:
    return World.generate(make_config("tiny"))
