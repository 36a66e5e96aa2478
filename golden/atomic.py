"""Atomic file writes, written once for every writer of the project (model files, the
commands' outputs, simulation results): whoever reads a result (a person, or a later run
deciding whether a stage is up to date) sees the old file or the new one, never part of one.
Standard library only, so that ``golden/`` (pure NumPy), ``sim/`` and ``scripts/`` share it.

Every writer writes a hidden temporary file in the destination's directory
(``.NAME.<random>.tmp<suffix>``: the same suffix, so that writers which choose the format by
the name, ``numpy.savez`` or ``matplotlib``'s ``savefig``, write the right one), flushes it to
disk and renames it over the destination with ``os.replace`` (atomic within a file system). A
write that raises removes its temporary file; a process killed while writing leaves at most
that hidden file, never a partial ``NAME``. Files get the usual permissions (``0o666`` less
the umask).
"""

import contextlib
import os
import secrets
import shutil
from pathlib import Path

__all__ = ["replacing", "write_text", "temp_dir", "replace_dir"]


def _temp_path(path):
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp{path.suffix}")


def _fsync(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(path):
    """Yield a temporary path next to ``path``; when the block ends without an exception the
    file written there replaces ``path``, otherwise it is removed.

    ::

        with replacing(out / "sim.npz") as tmp:
            np.savez(tmp, **arrays)
    """
    path = Path(path)
    while True:
        tmp = _temp_path(path)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:
            continue
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path, text):
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def temp_dir(dest):
    """A new, empty hidden directory next to ``dest``, to fill and then move into place with
    :func:`replace_dir`."""
    dest = Path(dest)
    while True:
        tmp = _temp_path(dest)
        try:
            os.mkdir(tmp, 0o777)
            return tmp
        except FileExistsError:
            continue


def replace_dir(src, dest):
    """Move directory ``src`` to ``dest``, replacing a ``dest`` that exists. At every moment
    ``dest`` is the old complete directory, absent, or the new complete one: the old one is
    renamed aside before the new one is renamed in, and deleted afterwards."""
    src, dest = Path(src), Path(dest)
    old = None
    if dest.exists():
        old = _temp_path(dest)
        os.replace(dest, old)
    os.replace(src, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
