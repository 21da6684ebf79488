"""The one output policy of every command that writes a folder or a file.

- A path whose replacement would destroy what is not ours is refused before any work: an empty path, `/`, the home
  folder, the current folder or one of its ancestors, a symlink, a file where a folder goes (and the reverse).
- An existing output is replaced only with `overwrite=True`, and only when it is a finished output of the same kind,
  recognised by its record file (the file each command writes last).
- The destination is claimed exclusively by a lock file next to it: of two concurrent writers, the second gets a
  `FileExistsError` naming the first one's process.
- The new output is written into a hidden staging sibling and swapped into place only when complete (one atomic
  exchange of the two names on Linux); the old output is deleted after the new one is in place. A killed or failed
  run therefore leaves either the old or the new output, complete.
- Staging folders and locks of dead processes are removed by the next run on the same path (and logged).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path


logger = logging.getLogger(__name__)

_PARTIAL = "partial"
_OLD = "old"
_LOCK = "lock"


def _sibling(output: Path, tag: str, pid: int | None = None) -> Path:
    suffix = f".{tag}" if pid is None else f".{tag}-{pid}"
    return output.parent / f".{output.name}{suffix}"


def refuse_unsafe_path(path: str | os.PathLike, parameter: str) -> Path:
    """`path` as an absolute `Path`, or `ValueError` when writing there could destroy what is not ours."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"`{parameter}` must be a path, got {type(path).__name__}")
    if str(path).strip() == "":
        raise ValueError(f"`{parameter}` is empty: give the folder to write")
    given = Path(path).expanduser()
    if given.is_symlink():
        raise ValueError(f"`{parameter}` {given} is a symbolic link: give the real folder")
    output = given.resolve()
    cwd = Path.cwd().resolve()
    protected = {Path(output.anchor), Path.home().resolve()}
    if output in protected or output == cwd or output in cwd.parents:
        raise ValueError(
            f"`{parameter}` {given} is the current folder, one of its parents, the home folder or the root: "
            "refusing to write over it; give a new folder"
        )
    return output


Markers = str | tuple[str, ...]


def is_finished(output: Path, markers: Markers) -> bool:
    """Whether `output` is an output of ours: it holds the record file (or a path matching one of the patterns)
    that the command writing it leaves."""
    if not output.is_dir() or output.is_symlink():
        return False
    patterns = (markers,) if isinstance(markers, str) else markers
    return any(any(output.glob(pattern)) for pattern in patterns)


def _first(markers: Markers) -> str:
    return markers if isinstance(markers, str) else markers[0]


def check_output(path: str | os.PathLike, record: Markers, *, overwrite: bool, parameter: str = "output_dir") -> Path:
    """Validate an output folder before any work; return it as an absolute `Path`.

    A missing or empty folder is fine; an existing one needs `overwrite` and must be a finished output of this
    kind (holding `record`). Raises `ValueError`/`FileExistsError` naming `parameter` otherwise.
    """
    output = refuse_unsafe_path(path, parameter)
    if output.exists() and not output.is_dir():
        raise FileExistsError(f"`{parameter}` {output} is a file, not a folder")
    if output.is_dir() and any(output.iterdir()):
        if not is_finished(output, record):
            raise FileExistsError(
                f"`{parameter}` {output} holds files that are not an output of this command (no {_first(record)}): "
                "refusing to replace it; choose a new folder"
            )
        if not overwrite:
            raise FileExistsError(f"`{parameter}` {output} holds a finished output; pass --overwrite to replace it")
    _nearest_writable_parent(output, parameter)
    return output


def _nearest_writable_parent(output: Path, parameter: str) -> None:
    parent = output.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, f"`{parameter}`: cannot create {output}: {parent} is not writable")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_of(path: Path) -> int | None:
    tail = path.name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else None


def remove_stale(output: Path) -> None:
    """Remove staging folders of dead processes next to `output`; restore an old output a killed swap moved aside."""
    for path in output.parent.glob(f".{_glob_escape(output.name)}.*-*"):
        pid = _pid_of(path)
        tag = path.name[len(output.name) + 2 :].rsplit("-", 1)[0]
        if pid is None or tag not in (_PARTIAL, _OLD) or _alive(pid):
            continue
        if tag == _OLD and not output.exists():
            path.rename(output)
            logger.warning("restored %s, moved aside by process %d that died while replacing it", output, pid)
        else:
            _remove(path)
            logger.warning("removed %s, left by process %d that died", path, pid)


def _glob_escape(name: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def claimed(output: Path, parameter: str = "output_dir") -> Iterator[None]:
    """Hold the exclusive right to write `output` (a lock file next to it) for the body's duration."""
    output.parent.mkdir(parents=True, exist_ok=True)
    lock = _sibling(output, _LOCK)
    # The lock appears with its holder's pid already in it (a hard link of a written file), so a competing
    # process never reads an empty lock and mistakes it for a dead one.
    ticket = _sibling(output, _LOCK, os.getpid())
    ticket.write_text(str(os.getpid()))
    try:
        for _ in range(2):
            try:
                os.link(ticket, lock)
                break
            except FileExistsError:
                holder = _read_pid(lock)
                if holder is not None and _alive(holder):
                    raise FileExistsError(
                        f"`{parameter}` {output} is being written by another process (pid {holder}, lock {lock}); "
                        "wait for it or choose another folder"
                    ) from None
                lock.unlink(missing_ok=True)  # the lock of a dead process
        else:
            raise FileExistsError(f"`{parameter}` {output}: could not take the lock {lock}")
    finally:
        ticket.unlink()
    try:
        remove_stale(output)
        yield
    finally:
        lock.unlink(missing_ok=True)


def _read_pid(lock: Path) -> int | None:
    try:
        text = lock.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def staging_path(output: Path, owner_pid: int | None = None) -> Path:
    """The hidden sibling that a run of process `owner_pid` (default: this one) writes before the swap."""
    return _sibling(output, _PARTIAL, os.getpid() if owner_pid is None else owner_pid)


def commit(staging: Path, output: Path, record: Markers | None, *, overwrite: bool, parameter: str = "output_dir") -> None:
    """Put the complete `staging` in place of `output`; delete the old output only once the new one is there.

    Refuses to replace what appeared at `output` meanwhile unless it is a finished output of the same kind and
    `overwrite` is set (for a file output, `record` is None and an existing file is replaced only with `overwrite`).
    """
    if output.exists() or output.is_symlink():
        empty_dir = output.is_dir() and not output.is_symlink() and not any(output.iterdir())
        ours = record is None and output.is_file() or record is not None and is_finished(output, record)
        if not empty_dir and not (overwrite and ours):
            raise FileExistsError(
                f"`{parameter}` {output} appeared or changed while this run was writing: left it as it is and "
                "discarded this run's output"
            )
        if output.is_file() and staging.is_file():
            os.replace(staging, output)  # atomic for files
            return
        if not _exchange(staging, output):
            old = _sibling(output, _OLD, os.getpid())
            output.rename(old)  # a kill between the renames is undone by remove_stale on the next run
            staging.rename(output)
            staging = old
        _remove(staging)
        return
    staging.rename(output)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    if not hasattr(libc, "renameat2"):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = libc.renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange)
    return result == 0


@contextlib.contextmanager
def staged_output(
    path: str | os.PathLike, record: Markers | None, *, overwrite: bool = False, parameter: str = "output_dir"
) -> Iterator[Path]:
    """Claim `path`, yield a staging path to write, and swap it into place when the body completes.

    `record` is the file a finished output of this kind holds (written last by the body); None for a single-file
    output. On any exception, KeyboardInterrupt included, the staging path is removed and `path` is left as it was.
    """
    output = refuse_unsafe_path(path, parameter)
    with claimed(output, parameter):  # checked once claimed: claiming may restore what a killed run moved aside
        if record is not None:
            check_output(output, record, overwrite=overwrite, parameter=parameter)
        elif output.exists() and not overwrite:
            raise FileExistsError(f"`{parameter}` {output} already exists; pass --overwrite to replace it")
        staging = staging_path(output)
        if record is not None:
            staging.mkdir()
        try:
            yield staging
            if record is not None and not is_finished(staging, record):
                raise RuntimeError(f"internal error: {staging} was completed without its record {_first(record)}")
            commit(staging, output, record, overwrite=overwrite, parameter=parameter)
        except BaseException:
            _remove(staging)
            raise
