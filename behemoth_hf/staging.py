"""Write a folder so that it appears only when complete: an interrupted run leaves nothing that looks finished."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staged_directory(output: Path) -> Iterator[Path]:
    """Yield a hidden sibling folder; rename it to `output` (replacing it) when the body completes.

    On any exception, KeyboardInterrupt included, the staging folder is deleted and `output` is left as it was.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = output.parent / f".{output.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        yield staging
        if output.exists():
            shutil.rmtree(output)
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
