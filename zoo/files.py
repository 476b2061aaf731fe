"""Writing files so that a reader never sees half of one."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from zoo.errors import ZooError


def public_mode(path: str | os.PathLike) -> None:
    """Give a file made by mkstemp (private) the usual permissions, as the umask would."""
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as JSON to a temporary name beside ``path``, then rename it into place."""
    try:
        text = json.dumps(obj, indent=2) + "\n"
    except (TypeError, ValueError) as err:  # checked before any file is made
        raise ZooError(f"cannot write {path}: its content is not JSON ({err})") from None
    return write_text_atomic(path, text)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to a temporary name beside ``path``, then rename it into place."""
    with replaced_atomically(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


@contextmanager
def replaced_atomically(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary path beside ``path``, renamed onto it if the block succeeds and deleted if not."""
    path = Path(path)
    if path.is_dir():
        raise ZooError(f"cannot write {path}: it is a folder")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as err:  # a file where a folder should be, no permission, ...
        raise ZooError(f"cannot write {path}: {err.strerror or err} ({err.filename or path.parent})") from None
    os.close(fd)
    try:
        yield Path(tmp_name)
        public_mode(tmp_name)  # mkstemp makes it private; the file we replace was not
        os.replace(tmp_name, path)
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def check_folder(setting: str, path: str | os.PathLike) -> Path:
    """``path`` as a Path if it is a folder or does not exist yet (it will be made); a file there is an error."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ZooError(f"{setting} {str(path)!r} is a file, not a folder")
    return path


def any_env_true(names: tuple[str, ...]) -> bool:
    """Whether any of these environment variables is set to 1/true/yes/on (offline switches)."""
    return any(os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"} for name in names)


def user_cache(env: str, sub: str) -> Path:
    """``$env`` if set, else ``$XDG_CACHE_HOME`` (or ~/.cache) / rnn-zoo / ``sub``."""
    if os.environ.get(env):
        return Path(os.environ[env])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rnn-zoo" / sub


def sha256_file(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
