"""Where pretrained files come from, and the check every one of them passes before it is used.

In order: an explicit local path; the files shipped inside the package; a Hugging Face
Hub repository pinned to a full commit, through ``huggingface_hub.hf_hub_download``
itself: its cache (``HF_HOME``, ``HF_HUB_CACHE``), its endpoint (``HF_ENDPOINT``, which is
also how a mirror is used) and its offline switch (``HF_HUB_OFFLINE=1``, or ``ZOO_OFFLINE=1``,
or ``offline=True``: only a copy already in the Hub's cache is used). Every file is
checked by size and sha256, the Hub's cached copy included, each time it is used; a copy
that fails is removed from the Hub's cache (the file and the blob behind it) and the
error says so, so the cache never keeps a bad file. The Hub client writes a download to
a temporary name and renames it into place, so an interrupted one leaves nothing
half-written. Weights are safetensors and are never unpickled.

What is used is what was hashed: ``fetch_checked`` reads a file once, checks those bytes
and hands them on, so a file swapped on disk after its check is never the one loaded.
A manifest's file names are plain names (no folder, no "..", no control character), and a
Hub cache entry that is a link leading out of the cache is refused, never followed, so no
read or removal lands outside the package folder or the cache.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zoo.errors import ZooError
from zoo.files import any_env_true, inside, plain_name

OFFLINE_ENVS = ("ZOO_OFFLINE", "HF_HUB_OFFLINE")  # as for data (tasks.datafiles)
PACKAGE_WEIGHTS = Path(__file__).parent / "pretrained_weights"
HUB_REVISION_LENGTH = 40
HUB_REVISION = re.compile(r"[0-9a-f]{40}")  # a full commit hash: a branch or tag could move under a release


@dataclass(frozen=True)
class FileSpec:
    """A file a pretrained model needs: its name, size and sha256."""

    name: str
    bytes: int
    sha256: str


def is_offline(offline: bool | None = None) -> bool:
    return offline if offline is not None else any_env_true(OFFLINE_ENVS)


@dataclass(frozen=True)
class Checked:
    """A file's bytes, read once and checked against its FileSpec, and where they came from."""

    path: Path
    data: bytes
    where: str
    from_hub: bool  # a copy in the Hub's cache: ``discard`` removes it when it turns out unusable


def check_file_name(name: object) -> str:
    """A manifest's file name, which must name one file beside the others (joined to the package folder)."""
    return plain_name(name, "file name in the manifest")


def checked_bytes(path: Path, spec: FileSpec, where: str) -> bytes:
    """The bytes of ``path`` if they are exactly ``spec``'s file, read once; otherwise one error naming the file."""
    size = path.stat().st_size
    if size == spec.bytes:
        with open(path, "rb") as f:
            data = f.read(spec.bytes + 1)  # never more than one byte past what it should be
        size = len(data)  # the file may have changed since its size was read
    if size != spec.bytes:
        raise ZooError(f"{spec.name} from {where} has {size:,} bytes, expected {spec.bytes:,}: "
                       f"{'truncated or another file' if size < spec.bytes else 'not the published file'}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != spec.sha256:
        raise ZooError(f"{spec.name} from {where} is corrupt or another file: sha256 {digest}, expected {spec.sha256}")
    return data


def check(path: Path, spec: FileSpec, where: str) -> Path:
    """``path`` if it is exactly ``spec``'s file; otherwise one error naming the file, what it is and what was expected."""
    checked_bytes(path, spec, where)
    return path


def hub_cache_dir() -> str | None:
    """The Hub cache named by the environment now (HF_HUB_CACHE, else HF_HOME/hub), or None: the Hub's default.

    huggingface_hub reads these once, when it is imported; reading them at each call
    obeys a process (a notebook, a test) that sets them later, as the Hub would at its next start.
    """
    if os.environ.get("HF_HUB_CACHE"):
        return os.path.expanduser(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return os.path.join(os.path.expanduser(os.environ["HF_HOME"]), "hub")
    return None


def hub_options(offline: bool) -> dict[str, Any]:
    """hf_hub_download's endpoint, cache and offline switch, from the environment at this call (see hub_cache_dir)."""
    return {"endpoint": os.environ.get("HF_ENDPOINT") or None, "cache_dir": hub_cache_dir(),
            "local_files_only": offline}


def _where_cached() -> str:
    from huggingface_hub import constants

    return hub_cache_dir() or constants.HF_HUB_CACHE


def drop_from_hub_cache(path: Path) -> None:
    """Remove a cached file the Hub returned: the snapshot's link and the blob it points to (or the file itself).

    A blob outside the cache is never removed: only the link that leads there.
    """
    blob = path.resolve() if path.is_symlink() else None
    path.unlink(missing_ok=True)
    root = Path(_where_cached()).resolve()
    if blob is not None and root in blob.parents:
        blob.unlink(missing_ok=True)


def _in_one_line(err: BaseException, limit: int = 300) -> str:
    """The Hub client's message (often several lines: status, request id, url) as one line."""
    text = " ".join(str(err).split()) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def download_hub(repo: str, revision: str, spec: FileSpec, *, offline: bool = False) -> Path:
    """``spec``'s file from Hub repo ``repo`` at commit ``revision``, by hf_hub_download, checked.

    Offline, only the Hub's cached copy is used. A copy that fails the size or sha256 check
    is removed from the Hub's cache, and the error names the repository, the commit and the file.
    """
    return _download_hub_checked(repo, revision, spec, offline=offline).path


def _download_hub_checked(repo: str, revision: str, spec: FileSpec, *, offline: bool = False) -> Checked:
    """``download_hub``, with the bytes that were checked."""
    if not (isinstance(revision, str) and HUB_REVISION.fullmatch(revision)):
        raise ZooError(f"Hub revision {revision!r} of {repo} is not a full {HUB_REVISION_LENGTH}-character commit "
                       "hash; pretrained files are pinned to one")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.utils import LocalEntryNotFoundError

    where = f"Hub repo {repo}@{revision[:12]}"
    try:
        fetched = Path(hf_hub_download(repo, spec.name, revision=revision, **hub_options(offline)))
    except LocalEntryNotFoundError as err:
        if offline:
            raise ZooError(f"{spec.name} is not available offline; tried: the package ({PACKAGE_WEIGHTS}), the Hub "
                           f"cache ({_where_cached()}) for {repo}@{revision[:12]}. Go online, or pass a local path"
                           ) from None
        raise ZooError(f"{spec.name}: could not reach {where}, and the Hub cache has no copy: {_in_one_line(err)}"
                       ) from None
    except Exception as err:  # huggingface_hub raises many types (HTTP, repository, revision, entry); its message says which
        raise ZooError(f"{spec.name}: could not get it from {where}: {_in_one_line(err)}") from None
    try:
        inside(_where_cached(), fetched, f"{spec.name} in the Hub cache")
    except ZooError as err:
        fetched.unlink(missing_ok=True)  # the link only: what it points to is not the cache's
        raise ZooError(f"{err}; removed the link, so the next try downloads the file again") from None
    try:
        return Checked(fetched, checked_bytes(fetched, spec, where), where, from_hub=True)
    except ZooError as err:
        drop_from_hub_cache(fetched)
        raise ZooError(f"{err}; removed it from the Hub cache ({_where_cached()}), so the next try downloads it "
                       "again") from None


def discard(checked: Checked, err: ZooError) -> ZooError:
    """The error for a file that passed its check but cannot be used (a malformed release); a Hub copy is removed.

    The file is the published one (its sha256 matched), so downloading it again would give
    the same bytes; the cache keeps nothing that was refused.
    """
    if not checked.from_hub:
        return err
    drop_from_hub_cache(checked.path)
    return ZooError(f"{err}; removed it from the Hub cache ({_where_cached()})")


def fetch(spec: FileSpec, *, path: str | os.PathLike | None = None, hub: dict | None = None,
          offline: bool | None = None) -> Path:
    """A checked local copy of ``spec``'s file, from the first source that has it (see the module docstring)."""
    return fetch_checked(spec, path=path, hub=hub, offline=offline).path


def fetch_checked(spec: FileSpec, *, path: str | os.PathLike | None = None, hub: dict | None = None,
                  offline: bool | None = None) -> Checked:
    """``spec``'s file from the first source that has it, read once and checked: use ``.data``, not the path again."""
    check_file_name(spec.name)
    if path is not None:
        local = Path(path)
        if not local.is_file():
            raise ZooError(f"no file at {local} (given as the local path of {spec.name})")
        return Checked(local, checked_bytes(local, spec, str(local)), str(local), from_hub=False)
    shipped = PACKAGE_WEIGHTS / spec.name
    if shipped.is_file():
        return Checked(shipped, checked_bytes(shipped, spec, "the package"), "the package", from_hub=False)
    if not hub:
        where = "not available offline" if is_offline(offline) else "not available"
        raise ZooError(f"{spec.name} is {where}; tried: an explicit path (none given), the package "
                       f"({PACKAGE_WEIGHTS}); it has no Hub repository to download it from. Pass a local path")
    return _download_hub_checked(hub["repo"], hub["revision"], spec, offline=is_offline(offline))
