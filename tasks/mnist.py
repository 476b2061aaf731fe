"""Sequential MNIST (sMNIST) and permuted sequential MNIST (psMNIST).

Each 28x28 image is read one pixel per step in raster order (784 steps, 1 input;
Le, Jaitly & Hinton 2015), or, for quick runs, one row per step (``variant="row"``:
28 steps of 28 inputs). Pixels are scaled to [0, 1] and normalized with MNIST's
training mean and std (0.1307, 0.3081). ``permuted=True`` reads the pixels in one
fixed random order made from ``permutation_seed`` on a CPU ``torch.Generator``, so
the order is the same on every machine; it breaks the image's locality, so the
dependencies a network must carry span the whole sequence. The permutation is
``SequentialMNIST.permutation`` and is kept in the DataModule's ``state_dict`` (so in
every checkpoint): a model is never scored on another order than the one it learnt.

Splits: the original 10,000 test images are the test set. The 60,000 training
images are split without any randomness: the *first* 5,000 are the validation set
and the other 55,000 the training set, the split of TensorFlow's classic
``input_data.read_data_sets`` (``validation_size=5000``). It does not depend on the
run's seed, so every run is scored on the same images.

Files: the four original IDX files come through ``tasks.datafiles`` (a data folder,
the cache, or a download; every file checked against its sha256), gzipped or not.
When they cannot be downloaded, or with ``source="hub"``, the images and labels are
read from the Hugging Face Hub's ``ylecun/mnist`` (parquet rows of PNG images) and
the uncompressed IDX files are rebuilt from them byte for byte, checked against the
original files' sha256 and put in the cache, so both routes feed the same bytes to
the same reader. PNGs are decoded by Pillow.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, SequentialSampler

from tasks import datafiles
from tasks.base import TaskDataModule
from tasks.hf_datasets import COMMIT
from tasks.loaders import EpochShuffle, ResumableLoader, on_accelerator
from zoo.errors import ZooError, check_choice, check_int
from zoo.task_spec import TaskSpec

SIDE = 28
PIXELS = SIDE * SIDE
NUM_CLASSES = 10
MEAN, STD = 0.1307, 0.3081  # of the 60,000 training images' pixels scaled to [0, 1]
VAL_SIZE = 5000  # the first 5,000 training images (TensorFlow's read_data_sets split)
IMAGE_MAGIC, LABEL_MAGIC = 0x00000803, 0x00000801  # IDX: unsigned bytes, 3 dims / 1 dim
VARIANTS = ("pixel", "row")
SOURCES = ("auto", "files", "hub")  # auto: original files, the Hub when they cannot be downloaded
HUB_ID = "ylecun/mnist"
# Share of the most frequent class (digit 1: 1,135 of the 10,000 test images): always guessing it.
MAJORITY_ACCURACY = 0.1135
# Validation accuracy at which a run counts as solved. Published LSTM results: ~98.2% on
# sMNIST and ~88% on psMNIST (Arjovsky et al. 2016); IRNN 97% / 82% (Le et al. 2015).
TARGETS = {False: 0.98, True: 0.90}  # keyed by ``permuted``
# Uncompressed IDX files (tasks.datafiles names) of each split: (images, labels).
SPLIT_FILES = {
    "train": ("mnist/train-images-idx3-ubyte", "mnist/train-labels-idx1-ubyte"),
    "test": ("mnist/t10k-images-idx3-ubyte", "mnist/t10k-labels-idx1-ubyte"),
}
SPLITS = ("train", "val", "test")


# --------------------------------------------------------------------- IDX files
def read_idx(path: Path, magic: int) -> np.ndarray:
    """An IDX file (gzipped when its name ends in .gz) as a uint8 array: (n, 28, 28) images or (n,) labels.

    The bytes are checked against the file's sha256 as they are read (``datafiles.read_checked``);
    the checks below catch a file that is in the table of checksums but is not what its name says.
    """
    raw = datafiles.read_checked(path)
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as err:
            raise ZooError(f"data file {path} is not a valid gzip file ({err}); replace it with the original") from err
    ndim = magic & 0xFF
    kind = "images" if magic == IMAGE_MAGIC else "labels"
    if len(raw) < 4 + 4 * ndim:
        raise ZooError(f"data file {path} is too short ({len(raw)} bytes) for an IDX {kind} header")
    found = struct.unpack(">I", raw[:4])[0]
    if found != magic:
        raise ZooError(f"data file {path} has IDX magic number 0x{found:08x}, expected 0x{magic:08x} (MNIST {kind})")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    if ndim == 3 and dims[1:] != (SIDE, SIDE):
        raise ZooError(f"data file {path} holds images of {dims[1]}x{dims[2]} pixels, expected {SIDE}x{SIDE}")
    body = raw[4 + 4 * ndim :]
    if len(body) != int(np.prod(dims)):
        raise ZooError(f"data file {path} has {len(body):,} bytes of data after its header, expected "
                       f"{int(np.prod(dims)):,} for dimensions {dims}")
    array = np.frombuffer(body, dtype=np.uint8).reshape(dims)
    if ndim == 1 and array.size and int(array.max()) >= NUM_CLASSES:
        raise ZooError(f"data file {path} holds label {int(array.max())}; MNIST labels are 0 to {NUM_CLASSES - 1}")
    return array


def idx_bytes(array: np.ndarray, magic: int) -> bytes:
    """The IDX encoding of a uint8 array: magic, big-endian dimensions, then the values in C order."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.tobytes()


# --------------------------------------------------------------------- PNG rows from the Hub
def decode_pngs(blobs: list[bytes], where: str) -> np.ndarray:
    """The Hub's PNG-encoded images -> (n, 28, 28) uint8, decoded by Pillow."""
    from PIL import Image, UnidentifiedImageError

    images = []
    for i, blob in enumerate(blobs):
        try:
            with Image.open(io.BytesIO(blob)) as image:
                pixels = np.asarray(image.convert("L") if image.mode != "L" else image, dtype=np.uint8)
        except (UnidentifiedImageError, OSError) as err:
            raise ZooError(f"{where} row {i} is not a readable PNG image ({err})") from err
        if pixels.shape != (SIDE, SIDE):
            raise ZooError(f"{where} row {i} is a {pixels.shape} image; MNIST images are {SIDE}x{SIDE}")
        images.append(pixels)
    return np.stack(images)


def _hub_split(hub_id: str, revision: str | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One split of the Hub dataset as (n, 28, 28) images and (n,) labels, streamed and decoded here."""
    try:
        import datasets
    except ImportError as err:
        raise ZooError("the Hugging Face Hub route for MNIST needs the 'datasets' package (pip install datasets), "
                       "or pass data_dir to a folder with the original files") from err
    where = f"Hub dataset {hub_id!r} split {split!r}"
    try:
        rows = datasets.load_dataset(hub_id, split=split, revision=revision, streaming=True).with_format("arrow")
        blobs: list[bytes] = []
        labels: list[int] = []
        for table in rows.iter(batch_size=10_000):
            blobs += table.column("image").combine_chunks().field("bytes").to_pylist()
            labels += table.column("label").to_pylist()
    except ZooError:
        raise
    except Exception as err:  # noqa: BLE001 - network, missing repo, wrong columns: one error naming the source
        raise ZooError(f"could not read {where} (columns 'image' and 'label'): {type(err).__name__}: {err}") from err
    if not blobs:
        raise ZooError(f"{where} has no rows")
    if not all(isinstance(label, int) and 0 <= label < NUM_CLASSES for label in labels):
        raise ZooError(f"{where} has labels outside 0 to {NUM_CLASSES - 1}")
    return decode_pngs(blobs, where), np.asarray(labels, dtype=np.uint8)


def pinned_commit(hub_id: str, revision: str | None) -> str | None:
    """``revision`` if it pins ``hub_id`` to one commit; a remote dataset read at a moving branch is an error.

    As with the weights (``zoo.transport``) and the text corpora (``tasks.hf_datasets``): a branch can
    move under a published number, a commit cannot. We cannot read the commit of ``ylecun/mnist`` from
    here (no Hub access), so the user pins it; a local folder (a mirror, the tests) needs none.
    """
    if revision is not None and not (isinstance(revision, str) and COMMIT.fullmatch(revision)):
        raise ZooError(f"hub_revision {revision!r} is not a full 40-character commit hash of Hub dataset "
                       f"{hub_id!r}; a Hub source is pinned to one commit, never a branch or tag")
    if revision is None and not Path(hub_id).expanduser().is_dir():
        raise ZooError(f"Hub dataset {hub_id!r} is not pinned to a commit, so it is not read: pass hub_revision="
                       "<its 40-character commit> (SequentialMNIST(hub_revision=...), --data.hub_revision), or give "
                       "the original files (a data folder)")
    return revision


def rebuild_from_hub(hub_id: str = HUB_ID, revision: str | None = None) -> dict[str, Path]:
    """Rebuild the four uncompressed IDX files from the Hub into the cache, each checked byte for byte.

    Returns the cached paths by file name. A rebuilt file that differs in any byte from
    the original (another dataset, other order, a decoding slip) is an error naming it,
    and is not cached, not even in part.
    """
    pinned_commit(hub_id, revision)
    paths: dict[str, Path] = {}
    for split, (images_name, labels_name) in SPLIT_FILES.items():
        images, labels = _hub_split(hub_id, revision, split)
        rebuilt = ((images_name, idx_bytes(images, IMAGE_MAGIC)), (labels_name, idx_bytes(labels, LABEL_MAGIC)))
        for name, data in rebuilt:
            f = datafiles.spec(name)
            try:
                paths[name] = datafiles.write_checked(data, f, datafiles.cache_dir() / f.path)
            except ZooError as err:
                at = f" at revision {revision!r}" if revision else ""
                raise ZooError(f"{f.path} rebuilt from Hub dataset {hub_id!r}{at} split {split!r} is not the original "
                               f"file, so it was not cached: {err}") from err
    return paths


# --------------------------------------------------------------------- where each file comes from
def mnist_file(
    name: str,
    *,
    data_dir: str | None = None,
    offline: bool | None = None,
    source: str = "auto",
    hub_id: str = HUB_ID,
    hub_revision: str | None = None,
) -> Path:
    """The checked path of uncompressed IDX file ``name`` or its original .gz, whichever is at hand.

    In order: a data folder (its .gz, else the uncompressed file); the cache (the same);
    a download of the .gz; the Hub (``source="auto"`` when the download fails, or
    ``source="hub"`` straight away). Errors about a file name that file.
    """
    gz = f"{name}.gz"
    folder = datafiles.data_dir_from(data_dir) if source != "hub" else None
    if folder is not None:
        has_raw = (folder / name).is_file() and not (folder / gz).exists()
        return datafiles.fetch(name if has_raw else gz, data_dir=folder)
    cache = datafiles.cache_dir()
    if source != "hub" and (cache / gz).exists():
        return datafiles.fetch(gz, offline=True)
    if (cache / name).exists():
        return datafiles.fetch(name, offline=True)
    hub_is_local = Path(hub_id).expanduser().is_dir()
    if source == "hub":
        if datafiles.is_offline(offline) and not hub_is_local:
            raise ZooError(f"data file {datafiles.describe(datafiles.spec(name))} is not in the cache {cache} and "
                           f"downloads are off (offline), so it cannot be rebuilt from Hub dataset {hub_id!r}")
        return rebuild_from_hub(hub_id, hub_revision)[name]
    if datafiles.is_offline(offline):
        return datafiles.fetch(gz, offline=True)  # raises: not in the cache, and downloads are off
    try:
        return datafiles.fetch(gz, offline=False)
    except ZooError as err:
        if source == "files":
            raise
        try:
            return rebuild_from_hub(hub_id, hub_revision)[name]
        except ZooError as hub_err:
            raise ZooError(f"{err}; rebuilding it from the Hugging Face Hub failed too: {hub_err}") from hub_err


# --------------------------------------------------------------------- batches
class Batches(Dataset):
    """Indexed by a whole batch of sample indices (from a BatchSampler): one gather per batch, no per-sample Python."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.as_tensor(indices, dtype=torch.long)
        return self.x[i], self.y[i]


def make_permutation(seed: int) -> torch.Tensor:
    """The psMNIST pixel order for ``seed``: (784,) int64, from a CPU generator, so identical on every machine."""
    return torch.randperm(PIXELS, generator=torch.Generator().manual_seed(seed))


def _check_bool(setting: str, value: Any, *, optional: bool = False) -> Any:
    """A real bool (or None when optional): 1 or "yes" from a config is a mistake, not a flag."""
    if isinstance(value, bool) or (optional and value is None):
        return value
    allowed = "true, false or unset (None)" if optional else "true or false"
    raise ZooError(f"{setting} must be {allowed}, got {value!r}")


def _check_text(setting: str, value: Any, *, optional: bool = False) -> Any:
    """A non-empty string (or None when optional)."""
    if (isinstance(value, str) and value.strip()) or (optional and value is None):
        return value
    raise ZooError(f"{setting} must be a non-empty string{' or unset (None)' if optional else ''}, got {value!r}")


class SequentialMNIST(TaskDataModule):
    """MNIST read as a sequence: pixel by pixel (784 x 1) or row by row (28 x 28), optionally permuted.

    Batches are ``x`` (B, 784, 1) or (B, 28, 28) float32 and ``y`` (B,) int64. The
    tensors are built once per split in ``setup`` (uint8 -> normalized float32, then
    permuted); a batch is one gather from them. ``task_spec`` needs no data, so a model
    can be built before the files are read. ``val_size`` is 5,000 (see the module
    docstring); it is a setting only so tests can run on small files.
    """

    def __init__(
        self,
        variant: str = "pixel",
        permuted: bool = False,
        permutation_seed: int = 0,
        batch_size: int = 128,
        eval_batch_size: int = 1000,
        data_dir: str | None = None,
        offline: bool | None = None,
        num_workers: int = 0,
        source: str = "auto",
        hub_id: str = HUB_ID,
        hub_revision: str | None = None,
        val_size: int = VAL_SIZE,
    ) -> None:
        super().__init__()
        self.variant = check_choice("variant", variant, VARIANTS)
        self.permuted = _check_bool("permuted", permuted)
        self.permutation_seed = check_int("permutation_seed", permutation_seed, low=0)
        self.batch_size = check_int("batch_size", batch_size, low=1)
        self.eval_batch_size = check_int("eval_batch_size", eval_batch_size, low=1)
        self.data_dir = _check_text("data_dir", None if data_dir is None else str(data_dir), optional=True)
        if self.data_dir is not None:
            datafiles.data_dir_from(self.data_dir)  # a folder that is not there is an error now, not after setup
        self.offline = _check_bool("offline", offline, optional=True)
        self.num_workers = check_int("num_workers", num_workers, low=0)
        self.source = check_choice("source", source, SOURCES)
        self.hub_id = _check_text("hub_id", hub_id)
        self.hub_revision = _check_text("hub_revision", hub_revision, optional=True)
        self.val_size = check_int("val_size", val_size, low=1)
        if self.source == "hub" and self.data_dir is not None:
            raise ZooError(f"data_dir {self.data_dir!r} and source 'hub' exclude each other: data_dir reads the "
                           "original files from a folder, 'hub' rebuilds them from the Hugging Face Hub")
        self.save_hyperparameters()
        # The pixel order read by the network (None: raster order); kept with the run via state_dict.
        self.permutation: torch.Tensor | None = make_permutation(self.permutation_seed) if self.permuted else None
        self._sets: dict[str, Batches] = {}

    # ----------------------------------------------------------------- the task
    licence = "MNIST (LeCun, Cortes, Burges): CC BY-SA 3.0"

    @property
    def shape(self) -> tuple[int, int]:
        """(steps, inputs per step) of a sequence: (784, 1) pixel by pixel, (28, 28) row by row."""
        return (PIXELS, 1) if self.variant == "pixel" else (SIDE, SIDE)

    def supports_length(self, seq_len: int) -> bool:
        """Only the image's own length: 784 pixels, or 28 rows."""
        return seq_len == self.shape[0]

    def release_facts(self) -> dict[str, Any]:
        """What a model trained here needs to read raw images (``zoo.pretrained.Pretrained.prepare_images``).

        uint8 pixels are divided by ``divide_by``, normalized by ``mean`` and ``std``, put in
        ``pixel_order`` (input position i reads raster pixel ``pixel_order[i]``; None: raster
        order) and read as ``steps`` x ``inputs``.
        """
        steps, inputs = self.shape
        return {"divide_by": 255.0, "mean": MEAN, "std": STD, "image_size": [SIDE, SIDE],
                "pixel_order": None if self.permutation is None else self.permutation.tolist(),
                "steps": steps, "inputs": inputs}

    @property
    def task_spec(self) -> TaskSpec:
        name = ("psmnist" if self.permuted else "smnist") + ("_row" if self.variant == "row" else "")
        return TaskSpec(
            name=name,
            input_size=1 if self.variant == "pixel" else SIDE,
            output_size=NUM_CLASSES,
            head="last",
            loss="cross_entropy",
            metrics=("accuracy",),
            target_metric="accuracy",
            target=TARGETS[self.permuted],
            target_mode="max",
            baselines={"accuracy": MAJORITY_ACCURACY},
            baseline_note="always the most frequent test class, digit 1",
        )

    # ----------------------------------------------------------------- data
    def file_paths(self, split: str) -> tuple[Path, Path]:
        """The checked (images, labels) files of the original ``train`` or ``test`` split."""
        kwargs = dict(data_dir=self.data_dir, offline=self.offline, source=self.source,
                      hub_id=self.hub_id, hub_revision=self.hub_revision)
        images, labels = SPLIT_FILES[split]
        return mnist_file(images, **kwargs), mnist_file(labels, **kwargs)

    def checksums(self) -> dict[str, str]:
        """sha256 of the four IDX files read, for the run record."""
        return {path.name: datafiles.sha256_of(path) for split in SPLIT_FILES for path in self.file_paths(split)}

    def _tensors(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """A whole original split as the network reads it: x (n, T, I) float32 and y (n,) int64."""
        images_path, labels_path = self.file_paths(split)
        images, labels = read_idx(images_path, IMAGE_MAGIC), read_idx(labels_path, LABEL_MAGIC)
        if len(images) != len(labels):
            raise ZooError(f"data file {images_path} holds {len(images):,} images but {labels_path} "
                           f"holds {len(labels):,} labels")
        x = torch.from_numpy(images.reshape(len(images), PIXELS).astype(np.float32)).div_(255.0).sub_(MEAN).div_(STD)
        if self.permutation is not None:
            x = x[:, self.permutation]
        return x.reshape(len(x), *self.shape).contiguous(), torch.from_numpy(labels.astype(np.int64))

    def dataset(self, split: str) -> Batches:
        """The ``train`` (55,000), ``val`` (5,000) or ``test`` (10,000) set, built once."""
        check_choice("split", split, SPLITS)
        if split not in self._sets:
            if split == "test":
                self._sets["test"] = Batches(*self._tensors("test"))
            else:
                x, y = self._tensors("train")
                if self.val_size >= len(y):
                    raise ZooError(f"val_size {self.val_size} leaves no training images: the training file "
                                   f"holds {len(y)}")
                v = self.val_size
                self._sets["val"], self._sets["train"] = Batches(x[:v], y[:v]), Batches(x[v:], y[v:])
        return self._sets[split]

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate"):
            self.dataset("val")
        if stage in (None, "test"):
            self.dataset("test")

    # ----------------------------------------------------------------- loaders
    def _loader(self, split: str, batch_size: int, shuffle: bool) -> DataLoader:
        data = self.dataset(split)
        if shuffle:  # training: an order that a resumed run can make again (tasks/loaders.py)
            return ResumableLoader(data, sampler=EpochShuffle(len(data), batch_size), batch_size=None,
                                   num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                                   background=on_accelerator(self))
        order = BatchSampler(SequentialSampler(data), batch_size, drop_last=False)
        return DataLoader(data, sampler=order, batch_size=None,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", self.eval_batch_size, shuffle=False)

    # ----------------------------------------------------------------- kept with the run
    def state_dict(self) -> dict[str, Any]:
        permutation = None if self.permutation is None else self.permutation.tolist()
        return {"variant": self.variant, "permutation_seed": self.permutation_seed, "permutation": permutation}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state.get("permutation") != self.state_dict()["permutation"]:
            theirs = _order(state.get("permutation"), state.get("permutation_seed"))
            raise ZooError(f"the checkpoint was trained on pixels in {theirs}, but this data reads them in "
                           f"{_order(self.permutation, self.permutation_seed)}; set permuted and permutation_seed "
                           "to match the checkpoint")


def _order(permutation: Any, seed: Any) -> str:
    return "raster order (not permuted)" if permutation is None else f"the permutation of seed {seed}"
