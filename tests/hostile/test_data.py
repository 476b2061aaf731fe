"""Hostile data: MNIST and PTB files served truncated, corrupt or under the wrong checksum, by a real download.

Each file is downloaded from a ``file://`` address (the download path the zoo takes from the
web, without a network) into an empty data cache. The bad-input catalogue
(``tests/test_bad_inputs.py``, rows ``datafiles-*``, ``mnist-*`` and ``lm-*``) already covers
bad files in a data folder and in the cache; these cases are the download route.
"""

from __future__ import annotations

import gzip
import hashlib
import re
from pathlib import Path

import pytest

from hostile_trials import Trial
from tasks import datafiles
from tasks.mnist import mnist_file
from zoo.errors import ZooError


def _ptb_text(n: int = 300) -> bytes:
    return (" the cat sat on the mat \n a dog ran <unk> \n" * n).encode()


def _mnist_gz() -> bytes:
    images = b"\x00\x00\x08\x03" + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2 + bytes(range(256)) * 6 + b"\0" * 32
    return gzip.compress(images, mtime=0)


def _truncate(data: bytes) -> bytes:
    return data[: len(data) * 2 // 3]


def _flip(data: bytes) -> bytes:
    out = bytearray(data)
    out[len(out) // 2] ^= 0x20  # one bit: the same size, another sha256
    return bytes(out)


CASES = {
    # case: (file name, the published bytes, what is served, the checksum registered for it, what the error says)
    "ptb-word-truncated": ("ptb/ptb.train.txt", _ptb_text(), _truncate, None, r"\(truncated\)"),
    "ptb-word-corrupt": ("ptb/ptb.valid.txt", _ptb_text(50), _flip, None, r"is corrupt or another file: sha256"),
    "ptb-word-wrong-checksum": ("ptb/ptb.test.txt", _ptb_text(40), None, "0" * 64,
                                r"is corrupt or another file: sha256 [0-9a-f]{64}, expected ptb/ptb.test.txt"),
    "ptb-char-too-long": ("ptb/ptb.char.train.txt", b"a b c _ d \n" * 500, lambda d: d + b"x \n", None,
                          r"\(too long\)"),
    "mnist-gz-truncated": ("mnist/t10k-images-idx3-ubyte.gz", _mnist_gz(), _truncate, None, r"\(truncated\)"),
    "mnist-gz-corrupt": ("mnist/t10k-images-idx3-ubyte.gz", _mnist_gz(), _flip, None, r"is corrupt or another file"),
    "mnist-gz-wrong-checksum": ("mnist/t10k-images-idx3-ubyte.gz", _mnist_gz(), None, "f" * 64,
                                r"is corrupt or another file"),
    "mnist-gz-empty": ("mnist/t10k-images-idx3-ubyte.gz", _mnist_gz(), lambda d: b"", None, r"is 0 bytes \(truncated\)"),
}

DOWNLOADS = Trial(
    "data", "bad MNIST and PTB files downloaded",
    does="A PTB word file served truncated or with one bit flipped, one whose registered sha256 is wrong, a character "
         "PTB file served too long; the MNIST test images (.gz) served truncated, corrupt, empty or under a wrong "
         "checksum; each fetched from its `file://` address into an empty data cache (PTB through "
         "`tasks.datafiles.fetch`, whose Hub fallback fails too, MNIST through `tasks.mnist.mnist_file`).",
    promise="One error naming the file, its expected size and sha256 and what was wrong (truncated, too long, "
            "corrupt); the data cache holds no file and no `.part` file afterwards; a good copy at the same address "
            "is cached and used.")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv(datafiles.ENV_CACHE_DIR, str(tmp_path / "cache"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # the Hub fallback, if tried, reaches no host
    for env in (*datafiles.OFFLINE_ENVS, datafiles.ENV_DATA_DIR):
        monkeypatch.delenv(env, raising=False)
    monkeypatch.setattr(datafiles, "FILES", dict(datafiles.FILES))
    return tmp_path / "cache"


def _serve(tmp_path: Path, name: str, published: bytes, served: bytes, sha256: str | None) -> Path:
    site = tmp_path / "site" / name
    site.parent.mkdir(parents=True, exist_ok=True)
    site.write_bytes(served)
    datafiles.FILES[name] = datafiles.DataFile(name, len(published), sha256 or hashlib.sha256(published).hexdigest(),
                                               (site.as_uri(),))
    return site


def _fetch(name: str) -> Path:
    if name.startswith("mnist/"):  # as SequentialMNIST reads it: the uncompressed name, found as its .gz
        return mnist_file(name.removesuffix(".gz"), source="files", offline=False)
    return datafiles.fetch(name, offline=False)


@DOWNLOADS
@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_download_is_refused_naming_the_file_and_the_cache_stays_clean(tmp_path, cache, case):
    name, published, serve, sha256, message = CASES[case]
    _serve(tmp_path, name, published, serve(published) if serve else published, sha256)
    with pytest.raises(ZooError) as err:
        _fetch(name)
    text = str(err.value)
    assert "\n" not in text and f"could not download {name}" in text and re.search(message, text), text
    assert [p for p in cache.rglob("*") if p.is_file()] == []


@DOWNLOADS
@pytest.mark.parametrize("name", ["ptb/ptb.train.txt", "mnist/t10k-images-idx3-ubyte.gz"])
def test_a_good_download_is_cached_and_then_used_without_its_address(tmp_path, cache, name):
    """The control: the same route with the published bytes caches them, and the cached copy is used next time."""
    published = _ptb_text() if name.startswith("ptb") else _mnist_gz()
    site = _serve(tmp_path, name, published, published, None)
    path = _fetch(name)
    assert path.read_bytes() == published and cache in path.parents
    site.unlink()
    assert _fetch(name) == path


SWAP = Trial(
    "data", "data file swapped after its check",
    does="A PTB word file and the MNIST test images are fetched (checked against their sha256), then replaced in "
         "the cache, before the task reads them, by a file of the same size whose size and mtime are set back to "
         "the checked file's (so a check remembered by size and mtime would pass): one bit flipped, or another file.",
    promise="Reading the swapped file is one error naming it and saying it changed after it was checked; no task "
            "parses bytes that were not hashed as they were read.")


@SWAP
@pytest.mark.parametrize("name", ["ptb/ptb.train.txt", "mnist/t10k-images-idx3-ubyte.gz"])
def test_a_file_swapped_after_its_check_is_refused_when_read(tmp_path, cache, name):
    import os

    from tasks.mnist import IMAGE_MAGIC, read_idx

    published = _ptb_text() if name.startswith("ptb") else _mnist_gz()
    _serve(tmp_path, name, published, published, None)
    path = _fetch(name)
    assert datafiles.read_checked(path) == published  # the control: the checked file reads
    before = path.stat()
    swapped = path.with_name(path.name + ".swap")
    swapped.write_bytes(_flip(published))
    os.replace(swapped, path)  # an atomic swap, as another process would make it
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    read = (lambda: read_idx(path, IMAGE_MAGIC)) if name.startswith("mnist") else (lambda: datafiles.read_checked(path))
    with pytest.raises(ZooError, match=rf"data file .*{re.escape(path.name)} changed after it was checked") as err:
        read()
    assert "\n" not in str(err.value)
