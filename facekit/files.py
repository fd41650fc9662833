"""Writing outputs safely: whole files or nothing, and never over one of the inputs."""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable, Iterable, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# Read once, at import: a new output gets the permissions any other new file of this process would.
NEW_FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: os.PathLike | str, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it to ``path``.

    A crash, a kill or Ctrl-C leaves the old file (or none), never a half-written one. The file
    keeps the permissions of the one it replaces (a new one: as the umask allows), not the
    temporary file's owner-only ones."""
    path = Path(path)
    mode = path.stat().st_mode & 0o777 if path.exists() else NEW_FILE_MODE
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent)
    os.close(handle)
    try:
        write(Path(temporary))
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def staged_folder(folder: os.PathLike | str) -> Iterator[Path]:
    """A temporary folder beside ``folder`` to write a set of files into; when the block ends without
    an error each file is moved into ``folder``, otherwise none is and the temporary folder goes."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield staging
        folder.mkdir(exist_ok=True)
        for path in staging.iterdir():
            os.replace(path, folder / path.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def is_inside(path: os.PathLike | str, root: os.PathLike | str) -> bool:
    """Whether ``path`` lies in the folder ``root`` (or is it), once links and ``..`` are resolved in both."""
    target, folder = os.path.realpath(path), os.path.realpath(root)
    return os.path.commonpath([folder, target]) == folder


def output_clash(output: os.PathLike | str, inputs: Iterable[os.PathLike | str]) -> str | None:
    """Why ``output`` must not be written, or None: it is one of the inputs (by any path or link), or an
    existing file inside an input folder, which the run reads."""
    target = os.path.realpath(output)
    for source in inputs:
        source_path = os.path.realpath(source)
        if target == source_path or (os.path.isdir(source_path) and os.path.isfile(target)
                                     and is_inside(target, source_path)):
            return f"{output} is one of the inputs: writing it would destroy it; choose another output file"
    return None
