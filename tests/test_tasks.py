"""Tasks own their facts: one DataModule base, resolution by short name or class path, licences, release facts."""

import hashlib
import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import tasks
from tasks import DATAMODULES, datafiles, resolve_datamodule
from tasks.adding import AddingProblem
from tasks.base import SyntheticTask, TaskDataModule
from tasks.copy_memory import CopyMemory
from tasks.language import CORPORA, LanguageModelling
from tasks.mnist import IMAGE_MAGIC, LABEL_MAGIC, SPLIT_FILES, SequentialMNIST, idx_bytes, make_permutation
from zoo import pretrained
from zoo.errors import ZooError
from zoo.records import data_checksums
from zoo.task_spec import TaskSpec

N = 24  # sequences of the toy task


class ToyTask(TaskDataModule):
    """A user's own task, plugged in by its class path: sum of a (B, 5, 1) sequence."""

    licence = "made up in tests/test_tasks.py; no third-party data"

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.save_hyperparameters()
        x = torch.randn(N, 5, 1, generator=torch.Generator().manual_seed(0)) * scale
        self.set = TensorDataset(x, x.sum(dim=(1, 2)))

    @property
    def task_spec(self) -> TaskSpec:
        return TaskSpec(name="toy_sum", input_size=1, output_size=1, head="last", loss="mse", metrics=("mse",),
                        target_metric="mse", target=0.01)

    def checksums(self):
        return {"synthetic": "ToyTask", "scale": self.scale}

    def release_facts(self):
        return {"scale": self.scale, "order": [2, 0, 1]}

    def train_dataloader(self):
        return DataLoader(self.set, batch_size=8)

    def val_dataloader(self):
        return DataLoader(self.set, batch_size=8)

    def test_dataloader(self):
        return DataLoader(self.set, batch_size=8)


class NoLicence(ToyTask):
    licence = None


class NotATask:
    pass


TOY = f"{ToyTask.__module__}.{ToyTask.__qualname__}"


# --------------------------------------------------------------------- the base
def test_the_base_is_abstract():
    class WithoutSpec(TaskDataModule):
        def checksums(self):
            return {}

    with pytest.raises(TypeError, match="abstract"):
        WithoutSpec()
    with pytest.raises(TypeError, match="abstract"):
        TaskDataModule()

    class SyntheticWithoutSet(SyntheticTask):
        @property
        def task_spec(self):
            return ToyTask().task_spec

    with pytest.raises(TypeError, match="fixed_set"):
        SyntheticWithoutSet()


def test_every_datamodule_is_on_the_base():
    for cls in DATAMODULES.values():
        assert issubclass(cls, TaskDataModule), cls
    assert issubclass(AddingProblem, SyntheticTask) and issubclass(CopyMemory, SyntheticTask)


def test_synthetic_tasks_keep_their_settings_and_state_their_seed():
    for cls, low in ((AddingProblem, 2), (CopyMemory, 1)):
        data = cls(seq_len=9, data_seed=7)
        assert dict(data.hparams) == {"seq_len": 9, "batch_size": 128, "batches_per_epoch": 100, "val_size": 1000,
                                      "test_size": 10_000, "eval_batch_size": 500, "seed": None, "data_seed": 7,
                                      "num_workers": 0}
        assert data.checksums() == {"synthetic": cls.__name__, "data_seed": 7} == data_checksums(data)
        assert data.release_facts() == {}
        assert data.supports_length(low) and data.supports_length(5000) and not data.supports_length(low - 1)
        with pytest.raises(ZooError, match=f"between {low} and"):
            cls(seq_len=low - 1)


def test_lengths_each_task_supports(tiny_ptb):
    assert SequentialMNIST().supports_length(784) and not SequentialMNIST().supports_length(392)
    assert SequentialMNIST(variant="row").supports_length(28) and not SequentialMNIST(variant="row").supports_length(784)
    lm = LanguageModelling("ptb", data_dir=str(tiny_ptb))
    assert lm.supports_length(1) and lm.supports_length(35) and lm.supports_length(10_000) and not lm.supports_length(0)


def test_a_datamodule_without_checksums_is_a_clear_error():
    with pytest.raises(ZooError, match="no checksums.*tasks.base.TaskDataModule"):
        data_checksums(object())


# --------------------------------------------------------------------- resolving a name
@pytest.mark.parametrize("name", sorted(DATAMODULES))
def test_short_names_and_class_paths_resolve_to_the_same_class(name):
    cls = DATAMODULES[name]
    assert resolve_datamodule(name) is cls
    assert resolve_datamodule(f"{cls.__module__}.{cls.__name__}") is cls
    assert resolve_datamodule(f"tasks.{name}") is cls
    assert tasks.datamodule_name(cls) == name


def test_a_users_task_resolves_by_its_class_path():
    assert resolve_datamodule(TOY) is ToyTask
    assert tasks.datamodule_name(ToyTask) == TOY


CHOICES = r"valid choices: AddingProblem, CopyMemory, LanguageModelling, SequentialMNIST, or the dotted class path"


@pytest.mark.parametrize("name,message", [
    ("ImageNet", r"unknown DataModule 'ImageNet'; " + CHOICES),
    ("", r"unknown DataModule ''; " + CHOICES),
    (None, r"unknown DataModule None; " + CHOICES),
    ("nowhere.Task", r"unknown DataModule 'nowhere.Task': module 'nowhere' cannot be imported .*; " + CHOICES),
    ("tasks.adding.Adding", r"module 'tasks.adding' has no 'Adding'; " + CHOICES),
    ("tasks.adding.", r"unknown DataModule 'tasks.adding.'; " + CHOICES),
    (f"{__name__}.NotATask", r"is a class test_tasks.NotATask, not a subclass of tasks.base.TaskDataModule.*" + CHOICES),
    ("tasks.adding.make_adding", r"is a function, not a subclass of tasks.base.TaskDataModule"),
    ("torch.utils.data.DataLoader", r"not a subclass of tasks.base.TaskDataModule"),
    ("tasks.base.TaskDataModule", r"is abstract \(it does not define checksums, task_spec\)"),
    ("tasks.base.SyntheticTask", r"is abstract \(it does not define fixed_set, task_spec\)"),
])
def test_bad_names_are_one_clear_error(name, message):
    with pytest.raises(ZooError, match=message):
        resolve_datamodule(name)


def test_runner_builds_a_datamodule_by_any_of_its_names():
    from zoo.app.runner import build_data

    assert type(build_data({"data": {"class": "AddingProblem", "args": {"seq_len": 7}}})) is AddingProblem
    assert build_data({"data": {"class": TOY, "args": {"scale": 2.0}}}).scale == 2.0
    with pytest.raises(ZooError, match="not a subclass"):
        build_data({"data": {"class": f"{__name__}.NotATask", "args": {}}})


# --------------------------------------------------------------------- licences
def test_every_datamodule_and_corpus_states_its_licence(tiny_ptb):
    assert "tasks/adding.py" in AddingProblem().licence and "tasks/copy_memory.py" in CopyMemory().licence
    assert SequentialMNIST().licence == "MNIST (LeCun, Cortes, Burges): CC BY-SA 3.0"
    for corpus in CORPORA.values():
        assert isinstance(corpus.licence, str) and corpus.licence.strip(), corpus.name
    assert "research use only" in CORPORA["ptb_char"].licence and "CC BY-SA" in CORPORA["wikitext2"].licence
    assert LanguageModelling("ptb", data_dir=str(tiny_ptb)).licence == CORPORA["ptb"].licence
    for cls in DATAMODULES.values():
        assert cls.licence is None or isinstance(cls.licence, (str, property)), cls  # stated on the class


def test_language_model_release_facts_are_its_vocabulary(tiny_ptb):
    lm = LanguageModelling("ptb", data_dir=str(tiny_ptb))
    assert lm.release_facts() == {"vocab": lm.vocab}


# --------------------------------------------------------------------- a user's task released
@pytest.fixture(scope="module")
def toy_record(tmp_path_factory, tiny_config):
    from zoo.app.runner import execute, write_record

    root = tmp_path_factory.mktemp("toy")
    config = tiny_config(steps=3)
    config["data"] = {"class": TOY, "args": {"scale": 0.5}}
    config["lengths"] = []
    record = execute(config, 0, weights_dir=root / "weights")
    return root, write_record(root / "record.json", record), record


def test_a_users_task_runs_and_releases_with_its_own_facts(toy_record):
    from zoo.app import release

    root, path, record = toy_record
    assert record["data"] == {"synthetic": "ToyTask", "scale": 0.5} and record["task"]["name"] == "toy_sum"
    name, card = release.export(path, root / "out", weights_dir=root / "weights", tag="toy")
    assert card["data_licence"] == ToyTask.licence and card["data"]["class"] == TOY
    assert card["preprocessing"] == {"scale": 0.5, "order": [2, 0, 1]} and card["extras"] == {}
    assert json.loads((root / "out" / "manifest.json").read_text())["models"][name]["preprocessing"] == \
        card["preprocessing"]


def test_a_task_without_a_licence_cannot_be_released(toy_record, tmp_path):
    from zoo.app import release

    root, path, record = toy_record
    record = json.loads(path.read_text())
    record["config"]["data"]["class"] = f"{__name__}.NoLicence"
    other = tmp_path / "record.json"
    other.write_text(json.dumps(record))
    with pytest.raises(ZooError, match="states no licence"):
        release.export(other, tmp_path / "out", weights_dir=root / "weights")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# --------------------------------------------------------------------- MNIST's facts feed prepare_images
@pytest.fixture
def small_mnist(tmp_path, monkeypatch):
    """Small original-format MNIST files (uncompressed) in a data folder, registered as the real ones."""
    for name in (datafiles.ENV_DATA_DIR, *datafiles.OFFLINE_ENVS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(datafiles.ENV_CACHE_DIR, str(tmp_path / "cache"))
    rng = np.random.default_rng(0)
    arrays = {"train": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
              "test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8)}
    table = dict(datafiles.FILES)
    for split, (images_name, labels_name) in SPLIT_FILES.items():
        labels = np.arange(len(arrays[split]), dtype=np.uint8) % 10
        for name, raw in ((images_name, idx_bytes(arrays[split], IMAGE_MAGIC)), (labels_name, idx_bytes(labels, LABEL_MAGIC))):
            path = tmp_path / "data" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(raw)
            table[name] = datafiles.DataFile(name, len(raw), hashlib.sha256(raw).hexdigest())
    monkeypatch.setattr(datafiles, "FILES", table)
    return tmp_path / "data", arrays


def _as_card(facts):
    return pretrained.Pretrained("x", None, {"task": {"name": "psmnist"}, "metric": "accuracy"}, None,
                                 json.loads(json.dumps(facts)))  # through JSON, as a card carries it


@pytest.mark.parametrize("variant", ["pixel", "row"])
@pytest.mark.parametrize("permuted", [False, True])
def test_mnist_release_facts_round_trip_through_prepare_images(small_mnist, variant, permuted):
    folder, arrays = small_mnist
    data = SequentialMNIST(variant=variant, permuted=permuted, permutation_seed=3, data_dir=str(folder), val_size=5)
    facts = data.release_facts()
    assert facts["image_size"] == [28, 28] and (facts["steps"], facts["inputs"]) == data.shape
    assert (facts["divide_by"], facts["mean"], facts["std"]) == (255.0, 0.1307, 0.3081)
    if permuted:
        assert facts["pixel_order"] == make_permutation(3).tolist() and len(facts["pixel_order"]) == 784
        assert all(isinstance(i, int) for i in facts["pixel_order"])
    else:
        assert facts["pixel_order"] is None
    model = _as_card(facts)
    assert torch.equal(model.prepare_images(arrays["test"]), data.dataset("test").x)
    assert torch.equal(model.prepare_images(arrays["test"].reshape(10, 784)), data.dataset("test").x)


def test_prepare_images_reads_only_the_card(small_mnist):
    folder, arrays = small_mnist
    facts = SequentialMNIST(permuted=True, data_dir=str(folder)).release_facts()
    with pytest.raises(ZooError, match=r"reads 28x28 = 784 pixels per image, got 100"):
        _as_card(facts).prepare_images(np.zeros((2, 10, 10), dtype=np.uint8))
    with pytest.raises(ZooError, match="pixel order of 3 positions for 784 pixels"):
        _as_card({**facts, "pixel_order": [0, 1, 2]}).prepare_images(arrays["test"])
    old_style = {"divide_by": 255.0, "mean": 0.1307, "std": 0.3081, "variant": "pixel", "permuted": False,
                 "permutation_seed": 0}
    with pytest.raises(ZooError, match=r"lacks pixel_order, steps, inputs\); re-export it"):
        _as_card(old_style).prepare_images(arrays["test"])


def test_the_shipped_mnist_card_carries_the_new_fields():
    card = pretrained.manifest()["lstm_1x128.smnist"]
    assert card["preprocessing"] == SequentialMNIST(**card["data"]["args"]).release_facts()
