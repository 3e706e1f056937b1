"""Atomic writes: a file or directory the user keeps is either the old one or the new one, never half.

Every writer goes the same way: write under a temporary name in the *same directory* (so the final
rename never crosses a filesystem), flush and ``fsync`` the data, ``os.replace`` it onto the final name
(atomic on POSIX and Windows), then ``fsync`` the directory so the rename itself survives a power loss.
On any exception (including ``KeyboardInterrupt``) the temporary is removed and the previous file is
left untouched. Temporary names start with ``.`` and end in ``.tmp`` (plus the final suffix, so that
writers which pick a format from the extension still do): ``.model.onnx.k2j4x1.tmp.onnx``.

Usage::

    from rlsuite.core.atomic import atomic_dir, atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text

    atomic_write_json(run / "config.json", config)          # also atomic_write_text / atomic_write_bytes

    with atomic_path(out / "model.safetensors") as tmp:      # for writers that want a file name
        safetensors.torch.save_file(tensors, str(tmp))      # (onnx.save, torch.jit.save, h5py.File, savefig ...)

    with atomic_dir(out / "checkpoint") as tmp:              # a directory written as a whole
        save_file(tensors, str(tmp / "model.safetensors"))
        atomic_write_json(tmp / "config.json", config)      # (plain writes are fine inside tmp too)

A new file gets the permissions a plain ``open`` would give it (``0o666`` less the umask), an existing
one keeps its own; a new directory ``0o777`` less the umask.

Replacing an existing directory uses Linux's ``renameat2(RENAME_EXCHANGE)`` where the filesystem offers
it: the old and new directories swap names in one step, then the old one is deleted. Elsewhere the old
directory is first renamed aside to ``.<name>.<random>.old`` and the new one renamed into place; an
exception between the two renames puts the old one back, and a crash there (power loss, SIGKILL) leaves
the old directory complete under that name.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_dir", "atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "fsync_dir"]


def _umask() -> int:
    if sys.platform == "linux":  # read it without changing it (os.umask sets it, which races with threads)
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
        except (OSError, ValueError, IndexError):
            pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def fsync_dir(path: str | os.PathLike) -> None:
    """``fsync`` a directory so that renames and creations inside it are durable (no-op where unsupported)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_name(path: Path, kind: str) -> tuple[str, str]:
    return f".{path.name}.", f".{kind}{path.suffix}"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file name beside ``path``; on normal exit it becomes ``path`` atomically.

    The body writes the temporary (it exists, empty, when the body starts; writers may replace it).
    On an exception in the body or in the replacement, the temporary is removed and ``path`` keeps its
    previous content (or stays absent).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = _temp_name(path, "tmp")
    fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"the writer left no file at the temporary {str(tmp)!r} meant for {str(path)!r}.")
        _fsync_file(tmp)
        try:
            mode = path.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8", newline: str | None = None) -> None:
    """Write ``text`` to ``path`` atomically (``newline`` as in :func:`open`: ``""`` keeps ``\\r\\n`` as is)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding=encoding, newline=newline) as f:
        f.write(text)
        f.flush()


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2, sort_keys: bool = False) -> None:
    """Write ``obj`` as JSON (with a final newline) to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys) + "\n")


# ----------------------------------------------------------------------------- directories


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_renameat2: Any = None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one atomic step (Linux ``renameat2``); ``False`` where that is not available."""
    global _renameat2
    if sys.platform != "linux":
        return False
    if _renameat2 is None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            fn = libc.renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            fn.restype = ctypes.c_int
            _renameat2 = fn
        except (OSError, AttributeError):
            _renameat2 = False
    if _renameat2 is False:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):
        return False  # the filesystem or kernel cannot exchange: fall back to two renames
    raise OSError(err, f"cannot exchange {str(a)!r} and {str(b)!r}: {os.strerror(err)}")


def _fsync_tree(root: Path) -> None:
    for dirpath, _, files in os.walk(root):
        for f in files:
            p = Path(dirpath, f)
            if not p.is_symlink():
                _fsync_file(p)
        fsync_dir(dirpath)


def _replace_dir(tmp: Path, path: Path) -> None:
    """Move the complete directory ``tmp`` onto ``path`` (which may exist, as a directory)."""
    if not path.exists() and not path.is_symlink():
        os.replace(tmp, path)
        return
    if not path.is_dir() or path.is_symlink():
        raise FileExistsError(f"cannot replace {str(path)!r} with a directory: it is not a directory.")
    if _exchange(tmp, path):
        shutil.rmtree(tmp, ignore_errors=True)  # tmp now holds the old content
        return
    prefix, suffix = _temp_name(path, "old")
    old = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=path.parent))
    os.replace(path, old)  # onto the fresh empty directory
    try:
        os.replace(tmp, path)
    except BaseException:
        os.replace(old, path)
        raise
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory beside ``path``; on normal exit it becomes ``path`` atomically.

    Every file under it is fsynced before the rename, an existing directory at ``path`` is replaced
    (see the module docstring) and the parent is fsynced after. On an exception in the body or in the
    replacement, the temporary directory is removed and ``path`` keeps its previous content.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = _temp_name(path, "tmp")
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=path.parent))
    try:
        yield tmp
        _fsync_tree(tmp)
        os.chmod(tmp, 0o777 & ~_umask())
        _replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_dir(path.parent)
