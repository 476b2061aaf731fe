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
    """A temporary path beside ``path``, renamed onto it if the block succeeds and deleted if not.

    An OSError in the block (a full disk, a file-size limit) is one ZooError naming ``path``:
    the file there before is untouched, and the temporary file is gone.
    """
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
    except OSError as err:  # a full disk (ENOSPC), a file-size limit (EFBIG), ...: the old file stays as it was
        other = f" ({err.filename})" if err.filename and str(err.filename) != tmp_name else ""
        raise ZooError(f"cannot write {path}: {err.strerror or err}{other}; nothing was written (the file there "
                       "before, if any, is unchanged)") from None
    finally:
        Path(tmp_name).unlink(missing_ok=True)


def temp_names(path: str | os.PathLike) -> list[Path]:
    """The temporary files ``replaced_atomically`` makes beside ``path``: a writer killed mid-write leaves one."""
    path = Path(path)
    return sorted(path.parent.glob(f".{glob_escape(path.name)}.*.tmp")) if path.parent.is_dir() else []


def glob_escape(name: str) -> str:
    """``name`` as a glob pattern that matches only itself."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in name)


def plain_name(name: object, what: str) -> str:
    """``name`` if it names one file in a folder: not empty, no folder part, not "." or "..", no control character.

    Names read from files that come from elsewhere (manifests, cards, records) are joined to
    a folder; any other name could reach a file outside it.
    """
    plain = isinstance(name, str) and name not in ("", ".", "..") and not any(c in name for c in "/\\") and all(
        ord(c) >= 32 and ord(c) != 127 for c in name)
    if not plain:
        raise ZooError(f"{what} {name!r} is not a plain file name (no folder, '..', absolute path or control "
                       "character): it must name a file in its own folder")
    return name


def inside(root: str | os.PathLike, path: str | os.PathLike, what: str) -> Path:
    """``path`` if it stays inside folder ``root`` once every link is followed; otherwise one error naming both.

    A cache or records folder may itself be a link (to a bigger disk), so both are resolved:
    what is refused is a link *within* it that leads out, so that no read or write through it
    lands elsewhere.
    """
    base, target = Path(root).resolve(), Path(path).resolve()
    if target != base and base not in target.parents:
        raise ZooError(f"{what} {path} leads outside {root} (a link to {target}); the folder's files must stay "
                       "in it: remove the link")
    return Path(path)


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
