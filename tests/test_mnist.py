"""Sequential MNIST: shapes, normalization, the permutation, splits, file checks, the Hub route, a short run.

Tests marked by ``REAL`` read the original files in ``../shared/data`` and are skipped
without them; the others make small IDX files (and a small Hub-layout dataset) of
their own and register their checksums in place of the real ones.
"""

import gzip
import hashlib
import io
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import numpy as np
import pytest
import torch

from tasks import datafiles
from tasks.mnist import (
    IMAGE_MAGIC,
    LABEL_MAGIC,
    MAJORITY_ACCURACY,
    MEAN,
    STD,
    SPLIT_FILES,
    SequentialMNIST,
    decode_pngs,
    idx_bytes,
    make_permutation,
    read_idx,
)
from zoo.errors import ZooError
from zoo.models.rnn import RNNConfig
from zoo.module import SequenceModel

SHARED = datafiles.shared_data_dir()
REAL = pytest.mark.skipif(SHARED is None or not (SHARED / "mnist").is_dir(), reason="no ../shared/data/mnist")
N_TRAIN, N_TEST, N_VAL = 40, 20, 10
ENVS = (datafiles.ENV_DATA_DIR, *datafiles.OFFLINE_ENVS)


# --------------------------------------------------------------------- small files
def _images(n: int, seed: int) -> np.ndarray:
    """Digit-like images: mostly 0, a bright random blob, so PNG filters have edges and flat runs to work on."""
    rng = np.random.default_rng(seed)
    images = np.zeros((n, 28, 28), dtype=np.uint8)
    for k in range(n):
        r, c = rng.integers(4, 18, size=2)
        images[k, r : r + 10, c : c + 8] = rng.integers(0, 256, size=(10, 8), dtype=np.uint8)
    return images


def _register(monkeypatch, files: dict[str, bytes]) -> None:
    """Put ``files`` (name -> bytes) in the checksum table, without download addresses."""
    table = dict(datafiles.FILES)
    for name, data in files.items():
        table[name] = datafiles.DataFile(name, len(data), hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(datafiles, "FILES", table)


@pytest.fixture
def small(tmp_path, monkeypatch):
    """A data folder of small original-format MNIST files (gzipped), registered as the real ones, and an empty cache."""
    for name in ENVS:
        monkeypatch.delenv(name, raising=False)
    cache = tmp_path / "cache"
    monkeypatch.setenv(datafiles.ENV_CACHE_DIR, str(cache))
    arrays = {
        "train": (_images(N_TRAIN, 1), np.arange(N_TRAIN, dtype=np.uint8) % 10),
        "test": (_images(N_TEST, 2), (np.arange(N_TEST, dtype=np.uint8) * 3) % 10),
    }
    files: dict[str, bytes] = {}
    for split, (images_name, labels_name) in SPLIT_FILES.items():
        images, labels = arrays[split]
        for name, raw in ((images_name, idx_bytes(images, IMAGE_MAGIC)), (labels_name, idx_bytes(labels, LABEL_MAGIC))):
            files[name] = raw
            files[f"{name}.gz"] = gzip.compress(raw, mtime=0)
    _register(monkeypatch, files)
    data = tmp_path / "data"
    (data / "mnist").mkdir(parents=True)
    for name, content in files.items():
        if name.endswith(".gz"):
            (data / name).write_bytes(content)
    return SimpleNamespace(data=data, cache=cache, arrays=arrays, files=files, tmp=tmp_path)


def _normalized(images: np.ndarray) -> torch.Tensor:
    return (torch.from_numpy(images.astype(np.float32)).reshape(len(images), 784) / 255.0 - MEAN) / STD


def _files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


# --------------------------------------------------------------------- shapes, values, splits
@pytest.mark.parametrize("variant,shape,input_size", [("pixel", (784, 1), 1), ("row", (28, 28), 28)])
def test_shapes(small, variant, shape, input_size):
    dm = SequentialMNIST(variant=variant, batch_size=8, eval_batch_size=7, data_dir=str(small.data), val_size=N_VAL)
    dm.setup()
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, *shape) and x.dtype == torch.float32
    assert y.shape == (8,) and y.dtype == torch.int64
    assert [b[0].shape[0] for b in dm.val_dataloader()] == [7, 3]
    assert sum(len(b[1]) for b in dm.test_dataloader()) == N_TEST
    sizes = (len(dm.dataset("train")), len(dm.dataset("val")), len(dm.dataset("test")))
    assert sizes == (N_TRAIN - N_VAL, N_VAL, N_TEST)
    assert dm.task_spec.input_size == input_size and dm.task_spec.output_size == 10


def test_values_are_normalized_pixels_in_raster_order_and_val_is_the_first_images(small):
    images, labels = small.arrays["train"]
    want = _normalized(images)
    pixel = SequentialMNIST(data_dir=str(small.data), val_size=N_VAL)
    row = SequentialMNIST(variant="row", data_dir=str(small.data), val_size=N_VAL)
    torch.testing.assert_close(pixel.dataset("val").x[:, :, 0], want[:N_VAL])
    torch.testing.assert_close(pixel.dataset("train").x[:, :, 0], want[N_VAL:])
    torch.testing.assert_close(row.dataset("train").x, want[N_VAL:].reshape(-1, 28, 28))  # step r = image row r
    assert pixel.dataset("val").y.tolist() == labels[:N_VAL].tolist()
    assert pixel.dataset("train").y.tolist() == labels[N_VAL:].tolist()
    assert pixel.dataset("test").y.tolist() == small.arrays["test"][1].tolist()
    assert pixel.dataset("train").x.min().item() == pytest.approx(-MEAN / STD)
    assert pixel.dataset("train").x.max().item() == pytest.approx((1 - MEAN) / STD)


def test_training_batches_cover_the_set_once_per_epoch_in_a_seeded_order(small):
    dm = SequentialMNIST(variant="row", batch_size=4, data_dir=str(small.data), val_size=N_VAL)

    def epoch(seed: int) -> list[int]:
        torch.manual_seed(seed)
        return [label for _, y in dm.train_dataloader() for label in y.tolist()]

    first = epoch(0)
    assert sorted(first) == sorted(dm.dataset("train").y.tolist())
    assert epoch(0) == first and epoch(1) != first


# --------------------------------------------------------------------- the permutation
def test_permutation_is_a_fixed_function_of_the_seed():
    a, b = SequentialMNIST(permuted=True, permutation_seed=3), SequentialMNIST(permuted=True, permutation_seed=3)
    assert torch.equal(a.permutation, b.permutation)
    assert not torch.equal(a.permutation, SequentialMNIST(permuted=True, permutation_seed=4).permutation)
    assert torch.equal(a.permutation.sort().values, torch.arange(784))
    assert SequentialMNIST().permutation is None
    torch.manual_seed(99)  # the global RNG plays no part
    # Recorded once: if torch's randperm ever changes, every psMNIST number and checkpoint changes with it.
    digest = hashlib.sha256(make_permutation(0).numpy().tobytes()).hexdigest()
    assert digest == "270deb57c4870003ce4534865b0f04e317928a27ad60fbb85f672e2b3b340d86"
    assert a.state_dict()["permutation"] == a.permutation.tolist()


def test_permutation_reorders_every_image_the_same_way(small):
    plain = SequentialMNIST(data_dir=str(small.data), val_size=N_VAL)
    perm = SequentialMNIST(permuted=True, permutation_seed=5, data_dir=str(small.data), val_size=N_VAL)
    perm_row = SequentialMNIST(variant="row", permuted=True, permutation_seed=5, data_dir=str(small.data),
                               val_size=N_VAL)
    p = perm.permutation
    assert not torch.equal(p, torch.arange(784))
    for split in ("train", "val", "test"):
        x, xp = plain.dataset(split).x[:, :, 0], perm.dataset(split).x[:, :, 0]
        assert torch.equal(xp, x[:, p])  # step t reads pixel p[t] of the raster order, in every image
        assert not torch.equal(xp, x)
        assert torch.equal(perm_row.dataset(split).x, xp.reshape(-1, 28, 28))
        assert torch.equal(perm.dataset(split).y, plain.dataset(split).y)


def test_a_checkpoint_must_match_the_permutation():
    plain, perm = SequentialMNIST(), SequentialMNIST(permuted=True, permutation_seed=1)
    perm.load_state_dict(SequentialMNIST(permuted=True, permutation_seed=1).state_dict())
    with pytest.raises(ZooError, match="permutation of seed 2.*permutation_seed"):
        perm.load_state_dict(SequentialMNIST(permuted=True, permutation_seed=2).state_dict())
    with pytest.raises(ZooError, match="raster order"):
        plain.load_state_dict(perm.state_dict())


# --------------------------------------------------------------------- the task
@pytest.mark.parametrize("variant,permuted,name,size,target", [("pixel", False, "smnist", 1, 0.98),
                                                               ("row", False, "smnist_row", 28, 0.98),
                                                               ("pixel", True, "psmnist", 1, 0.90)])
def test_task_spec_needs_no_data(tmp_path, monkeypatch, variant, permuted, name, size, target):
    monkeypatch.setenv(datafiles.ENV_CACHE_DIR, str(tmp_path))
    dm = SequentialMNIST(variant=variant, permuted=permuted, offline=True)
    spec = dm.task_spec  # offline, nothing cached: it must not touch the files
    assert (spec.name, spec.input_size, spec.output_size, spec.target) == (name, size, 10, target)
    assert (spec.head, spec.loss, spec.metrics, spec.target_metric, spec.target_mode) == (
        "last", "cross_entropy", ("accuracy",), "accuracy", "max")
    assert spec.baselines == {"accuracy": MAJORITY_ACCURACY}
    assert _files_in(tmp_path) == []


@pytest.mark.parametrize("kwargs,setting", [
    ({"variant": "column"}, "variant"),
    ({"permuted": "yes"}, "permuted"),
    ({"permutation_seed": -1}, "permutation_seed"),
    ({"batch_size": 0}, "batch_size"),
    ({"eval_batch_size": 1.5}, "eval_batch_size"),
    ({"offline": 1}, "offline"),
    ({"num_workers": -1}, "num_workers"),
    ({"source": "web"}, "source"),
    ({"hub_id": ""}, "hub_id"),
    ({"val_size": 0}, "val_size"),
    ({"data_dir": "/tmp", "source": "hub"}, "data_dir"),
    ({"data_dir": "/no/such/folder"}, "data_dir '/no/such/folder' is not a folder"),
])
def test_bad_settings_name_themselves(kwargs, setting):
    with pytest.raises(ZooError, match=setting):
        SequentialMNIST(**kwargs)


def test_val_size_must_leave_training_images(small):
    with pytest.raises(ZooError, match="val_size 40 leaves no training images"):
        SequentialMNIST(data_dir=str(small.data), val_size=N_TRAIN).setup("fit")


# --------------------------------------------------------------------- the real files
@pytest.fixture(scope="module")
def real() -> SequentialMNIST:
    dm = SequentialMNIST(data_dir=str(SHARED), offline=True)
    dm.setup()
    return dm


@REAL
def test_real_splits(real):
    sizes = {split: len(real.dataset(split)) for split in ("train", "val", "test")}
    assert sizes == {"train": 55_000, "val": 5_000, "test": 10_000}
    x, y = next(iter(real.train_dataloader()))
    assert x.shape == (128, 784, 1) and y.shape == (128,)
    assert set(real.dataset("test").y.unique().tolist()) == set(range(10))


@REAL
def test_real_train_and_val_are_disjoint(real):
    def rows(split: str) -> set[bytes]:
        return {r.numpy().tobytes() for r in real.dataset(split).x[:, :, 0]}

    train, val = rows("train"), rows("val")
    assert len(val) == 5_000 and len(train) == 55_000  # every image distinct, so disjoint by content means by index
    assert not train & val


@REAL
def test_real_normalization_and_baseline(real):
    x = torch.cat([real.dataset("val").x, real.dataset("train").x])  # all 60,000 training images
    assert x.mean().item() == pytest.approx(0.0, abs=1e-3) and x.std().item() == pytest.approx(1.0, abs=1e-3)
    y = real.dataset("test").y
    assert torch.bincount(y).max().item() / len(y) == MAJORITY_ACCURACY  # the constant in task_spec is the data's


@REAL
def test_rebuilt_idx_bytes_match_the_original_uncompressed_files():
    """What the Hub route writes (idx_bytes of the arrays) is byte for byte the original files' content."""
    for images_name, labels_name in SPLIT_FILES.values():
        for name, magic in ((images_name, IMAGE_MAGIC), (labels_name, LABEL_MAGIC)):
            data = idx_bytes(read_idx(SHARED / f"{name}.gz", magic), magic)
            assert hashlib.sha256(data).hexdigest() == datafiles.spec(name).sha256


# --------------------------------------------------------------------- bad and missing files
def _one_bad_file(small, content: bytes) -> None:
    (small.data / "mnist/train-images-idx3-ubyte.gz").write_bytes(content)


@pytest.mark.parametrize("damage,message", [("truncate", "truncated"), ("flip", "corrupt")])
def test_a_bad_file_is_an_error_naming_it(small, damage, message):
    good = small.files["mnist/train-images-idx3-ubyte.gz"]
    bad = good[:-100] if damage == "truncate" else good[:50] + bytes([good[50] ^ 0xFF]) + good[51:]
    _one_bad_file(small, bad)
    with pytest.raises(ZooError, match=rf"train-images-idx3-ubyte\.gz.*{message}"):
        SequentialMNIST(data_dir=str(small.data), val_size=N_VAL).setup("fit")
    assert _files_in(small.cache) == []  # nothing downloaded or copied on the way


def test_a_bad_file_in_the_cache_is_reported_not_replaced(small):
    name = "mnist/train-labels-idx1-ubyte.gz"
    (small.cache / "mnist").mkdir(parents=True)
    (small.cache / "mnist/train-images-idx3-ubyte.gz").write_bytes(small.files["mnist/train-images-idx3-ubyte.gz"])
    (small.cache / name).write_bytes(small.files[name][:-3])
    with pytest.raises(ZooError, match=r"train-labels-idx1-ubyte\.gz.*truncated"):
        SequentialMNIST(val_size=N_VAL).setup("fit")
    assert (small.cache / name).read_bytes() == small.files[name][:-3]


def test_a_checked_file_that_is_not_idx_is_an_error_naming_it(small, monkeypatch):
    """A file in the checksum table whose content is not the IDX its name says: the reader names it and the magic."""
    raw = idx_bytes(small.arrays["train"][1], LABEL_MAGIC)  # labels, under the images' name
    _register(monkeypatch, {"mnist/train-images-idx3-ubyte.gz": gzip.compress(raw, mtime=0)})
    _one_bad_file(small, gzip.compress(raw, mtime=0))
    with pytest.raises(ZooError, match=r"images-idx3-ubyte\.gz has IDX magic number 0x00000801, expected 0x00000803"):
        SequentialMNIST(data_dir=str(small.data), val_size=N_VAL).setup("fit")


def test_uncompressed_files_are_read_too(small):
    for images_name, labels_name in SPLIT_FILES.values():
        for name in (images_name, labels_name):
            (small.data / f"{name}.gz").unlink()
            (small.data / name).write_bytes(small.files[name])
    dm = SequentialMNIST(data_dir=str(small.data), val_size=N_VAL)
    torch.testing.assert_close(dm.dataset("test").x[:, :, 0], _normalized(small.arrays["test"][0]))


def test_offline_without_data_is_a_clear_error(small):
    with pytest.raises(ZooError, match=r"train-images-idx3-ubyte\.gz.*not in the cache.*offline.*data_dir"):
        SequentialMNIST(offline=True, val_size=N_VAL).setup("fit")
    with pytest.raises(ZooError, match=r"offline.*cannot be rebuilt from Hub dataset 'ylecun/mnist'"):
        SequentialMNIST(offline=True, source="hub", val_size=N_VAL).setup("fit")
    assert _files_in(small.cache) == []


# --------------------------------------------------------------------- the Hub route
def _pngs(images: np.ndarray) -> list[bytes]:
    from PIL import Image

    blobs = []
    for image in images:
        buffer = io.BytesIO()
        Image.fromarray(image, mode="L").save(buffer, format="PNG")
        blobs.append(buffer.getvalue())
    return blobs


def test_png_decoding():
    rng = np.random.default_rng(0)
    images = np.concatenate([rng.integers(0, 256, size=(6, 28, 28), dtype=np.uint8), _images(6, 3)])
    assert np.array_equal(decode_pngs(_pngs(images), "test"), images)
    with pytest.raises(ZooError, match="row 1 is not a readable PNG image"):
        decode_pngs([_pngs(images[:1])[0], b"GIF89a"], "test")


@pytest.fixture
def hf(small, monkeypatch):
    """The ``datasets`` package (skip without it), its cache (locks) moved out of the home folder."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", small.tmp / "hf-cache")
    return datasets


def _hub_folder(small, datasets, images_override: dict[str, np.ndarray] | None = None) -> Path:
    """``small``'s data in the Hub's layout: <id>/mnist/{train,test}-00000-of-00001.parquet, PNG images and labels."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    features = datasets.Features({"image": datasets.Image(),
                                  "label": datasets.ClassLabel(names=[str(i) for i in range(10)])})
    root = small.tmp / "hub"
    (root / "mnist").mkdir(parents=True)
    for split, (images, labels) in small.arrays.items():
        images = (images_override or {}).get(split, images)
        table = pa.table({"image": [{"bytes": b, "path": None} for b in _pngs(images)], "label": labels.tolist()},
                         schema=features.arrow_schema)
        pq.write_table(table, root / "mnist" / f"{split}-00000-of-00001.parquet")
    return root


@pytest.mark.parametrize("source", ["hub", "auto"])  # auto: the download fails (no addresses), so the Hub is next
def test_hub_rows_are_rebuilt_into_checked_idx_files(small, hf, source):
    hub = _hub_folder(small, hf)
    dm = SequentialMNIST(variant="row", source=source, hub_id=str(hub), val_size=N_VAL)
    dm.setup()
    from_files = SequentialMNIST(variant="row", data_dir=str(small.data), val_size=N_VAL)
    for split in ("train", "val", "test"):
        assert torch.equal(dm.dataset(split).x, from_files.dataset(split).x)
        assert torch.equal(dm.dataset(split).y, from_files.dataset(split).y)
    cached = {str(p.relative_to(small.cache)): p for p in _files_in(small.cache)}
    names = [name for pair in SPLIT_FILES.values() for name in pair]
    assert sorted(cached) == sorted(names)  # the four uncompressed files, no partial ones
    for name in names:
        assert hashlib.sha256(cached[name].read_bytes()).hexdigest() == datafiles.spec(name).sha256
    # The next run reads the cache, even offline and with the Hub gone.
    for p in hub.rglob("*.parquet"):
        p.unlink()
    again = SequentialMNIST(variant="row", offline=True, val_size=N_VAL)
    assert torch.equal(again.dataset("test").x, dm.dataset("test").x)


def test_hub_rows_that_differ_from_the_original_are_rejected(small, hf):
    images = small.arrays["train"][0].copy()
    images[3, 14, 14] ^= 1  # one pixel of one image
    hub = _hub_folder(small, hf, {"train": images})
    message = r"mnist/train-images-idx3-ubyte rebuilt from Hub dataset .*hub' split 'train' is not the orig.*corrupt"
    with pytest.raises(ZooError, match=message):
        SequentialMNIST(source="hub", hub_id=str(hub), val_size=N_VAL).setup("fit")
    assert _files_in(small.cache) == []


def test_when_download_and_hub_both_fail_the_error_says_both(small, hf):
    empty = small.tmp / "empty-hub"  # a local folder with no parquet files: fails at once, no network involved
    empty.mkdir()
    with pytest.raises(ZooError, match=r"could not download .*train-images-idx3-ubyte\.gz.*Hub failed too.*empty-hub"):
        SequentialMNIST(hub_id=str(empty), val_size=N_VAL).setup("fit")
    assert _files_in(small.cache) == []


# --------------------------------------------------------------------- a short run
def test_a_model_trains_on_it(small):
    dm = SequentialMNIST(variant="row", batch_size=8, eval_batch_size=5, data_dir=str(small.data), val_size=N_VAL)
    L.seed_everything(0, verbose=False)
    model = SequenceModel(dm.task_spec, RNNConfig(cell="gru", hidden_size=16))
    trainer = L.Trainer(max_steps=3, limit_val_batches=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        val_check_interval=3)
    trainer.fit(model, datamodule=dm)
    assert trainer.global_step == 3
    assert torch.isfinite(trainer.callback_metrics["train_loss"])
    assert 0.0 <= trainer.callback_metrics["val_accuracy"].item() <= 1.0
    tested = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert 0.0 <= tested["test_accuracy"] <= 1.0 and np.isfinite(tested["test_loss"])


@pytest.mark.parametrize("revision, message", [
    (None, r"Hub dataset 'ylecun/mnist' is not pinned to a commit, so it is not read: pass hub_revision="),
    ("main", r"hub_revision 'main' is not a full 40-character commit hash of Hub dataset 'ylecun/mnist'"),
])
def test_the_remote_hub_is_read_only_at_a_pinned_commit(small, hf, revision, message):
    """A branch can move under a published number: the Hub route refuses one before any request is made."""
    with pytest.raises(ZooError, match=message):
        SequentialMNIST(source="hub", hub_id="ylecun/mnist", hub_revision=revision, val_size=N_VAL).setup("fit")
    assert _files_in(small.cache) == []
