"""Where pretrained files come from, and the check every one of them passes before it is used.

In order: an explicit local path; the cache (verified again); files shipped inside the
package; a mirror base URL over HTTP (``ZOO_WEIGHTS_MIRROR``); a Hugging Face Hub
repository pinned to a full commit (through ``huggingface_hub``). With ``offline``
(or ``ZOO_OFFLINE=1``) only the local sources are tried. Every file is checked by size
and sha256; a download goes to a temporary name and is renamed into the cache only
after it checks out, so the cache never holds a bad or partial file. Weights are
safetensors and are never unpickled.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ZooError
from zoo.files import any_env_true, public_mode, sha256_file, user_cache


ENV_CACHE = "ZOO_WEIGHTS_CACHE"  # default: $XDG_CACHE_HOME or ~/.cache, then rnn-zoo/pretrained
ENV_MIRROR = "ZOO_WEIGHTS_MIRROR"  # base URL: <base>/<file name>
OFFLINE_ENVS = ("ZOO_OFFLINE", "HF_HUB_OFFLINE")  # as for data (tasks.datafiles)
PACKAGE_WEIGHTS = Path(__file__).parent / "pretrained_weights"
HUB_REVISION_LENGTH = 40


@dataclass(frozen=True)
class FileSpec:
    """A file a pretrained model needs: its name, size and sha256."""

    name: str
    bytes: int
    sha256: str


def cache_dir() -> Path:
    return user_cache(ENV_CACHE, "pretrained")


def is_offline(offline: bool | None = None) -> bool:
    return offline if offline is not None else any_env_true(OFFLINE_ENVS)


def check(path: Path, spec: FileSpec, where: str) -> Path:
    """``path`` if it is exactly ``spec``'s file; otherwise one error naming the file, what it is and what was expected."""
    size = path.stat().st_size
    if size != spec.bytes:
        raise ZooError(f"{spec.name} from {where} has {size:,} bytes, expected {spec.bytes:,}: "
                       f"{'truncated or another file' if size < spec.bytes else 'not the published file'}")
    digest = sha256_file(path)
    if digest != spec.sha256:
        raise ZooError(f"{spec.name} from {where} is corrupt or another file: sha256 {digest}, expected {spec.sha256}")
    return path


def _into_cache(tmp: Path, spec: FileSpec, where: str) -> Path:
    """Check a fetched temporary file, then rename it into the cache; a bad one is deleted, never kept."""
    try:
        check(tmp, spec, where)
        target = cache_dir() / spec.sha256[:16] / spec.name
        target.parent.mkdir(parents=True, exist_ok=True)
        public_mode(tmp)
        os.replace(tmp, target)
        return target
    finally:
        tmp.unlink(missing_ok=True)


def _temp_in_cache(spec: FileSpec) -> Path:
    cache_dir().mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".part", dir=cache_dir())
    os.close(fd)
    return Path(name)


def download_http(url: str, spec: FileSpec, timeout: float = 60.0) -> Path:
    tmp = _temp_in_cache(spec)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(tmp, "wb") as f:
            shutil.copyfileobj(response, f)
    except urllib.error.HTTPError as err:
        tmp.unlink(missing_ok=True)
        raise ZooError(f"{spec.name}: the mirror answered {err.code} {err.reason} for {url}") from None
    except (urllib.error.URLError, OSError) as err:
        tmp.unlink(missing_ok=True)
        raise ZooError(f"{spec.name}: could not download {url}: {err}") from None
    return _into_cache(tmp, spec, url)


def download_hub(repo: str, revision: str, spec: FileSpec) -> Path:
    if len(revision) != HUB_REVISION_LENGTH:
        raise ZooError(f"Hub revision {revision!r} of {repo} is not a full {HUB_REVISION_LENGTH}-character commit "
                       "hash; pretrained files are pinned to one")
    from huggingface_hub import hf_hub_download

    try:
        fetched = Path(hf_hub_download(repo, spec.name, revision=revision))
    except Exception as err:  # huggingface_hub raises many types; the message says which
        raise ZooError(f"{spec.name}: could not get it from Hub repo {repo}@{revision[:12]}: {err}") from None
    tmp = _temp_in_cache(spec)
    shutil.copyfile(fetched, tmp)
    return _into_cache(tmp, spec, f"Hub repo {repo}@{revision[:12]}")


def fetch(spec: FileSpec, *, path: str | os.PathLike | None = None, hub: dict | None = None,
          offline: bool | None = None, mirror: str | None = None) -> Path:
    """A checked local copy of ``spec``'s file, from the first source that has it (see the module docstring)."""
    if path is not None:
        local = Path(path)
        if not local.is_file():
            raise ZooError(f"no file at {local} (given as the local path of {spec.name})")
        return check(local, spec, str(local))
    cached = cache_dir() / spec.sha256[:16] / spec.name
    if cached.is_file():
        try:
            return check(cached, spec, "the cache")
        except ZooError:
            cached.unlink()  # damaged since it was stored: fetch it again below
    package = PACKAGE_WEIGHTS
    shipped = package / spec.name
    if shipped.is_file():
        return check(shipped, spec, "the package")
    tried = ["an explicit path (none given)", f"the cache ({cached.parent})", f"the package ({package})"]
    if is_offline(offline):
        raise ZooError(f"{spec.name} is not available offline; tried: {', '.join(tried)}. "
                       f"Go online, or pass a local path")
    errors = []
    base = mirror if mirror is not None else os.environ.get(ENV_MIRROR)
    if base:
        try:
            return download_http(f"{base.rstrip('/')}/{spec.name}", spec)
        except ZooError as err:
            errors.append(str(err))
    if hub:
        try:
            return download_hub(hub["repo"], hub["revision"], spec)
        except ZooError as err:
            errors.append(str(err))
    if not base and not hub:
        errors.append(f"no mirror ({ENV_MIRROR} unset) and no Hub repository for it")
    raise ZooError(f"could not get {spec.name}: " + "; ".join(errors))
