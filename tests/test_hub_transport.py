"""Weights through huggingface_hub's own client, against a local Hub endpoint (tests/hub_server.py).

Good, corrupt, truncated and missing files; the Hub's cache (a second call asks nothing, a
copy damaged in the cache is dropped); HF_HUB_OFFLINE with and without a cached copy; and a
shipped release loaded end to end by ``zoo.pretrained.load`` and ``zoo.create_model``.
"""

from __future__ import annotations

import hashlib
import json

import pytest

import zoo
from hub_server import FakeHub
from zoo import pretrained, transport
from zoo.errors import ZooError
SHIPPED = transport.PACKAGE_WEIGHTS  # read at import, before the fixture points the package elsewhere
REPO = "zoo-test/weights"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
GOOD = b"weights " * 1000


def spec_of(name: str, data: bytes) -> transport.FileSpec:
    return transport.FileSpec(name, len(data), hashlib.sha256(data).hexdigest())


def cached_files(root) -> list[str]:
    """The files the Hub cache holds for downloads (blobs and snapshot links), not its locks or markers."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if (p.is_file() or p.is_symlink()) and ("blobs" in p.parts or "snapshots" in p.parts))


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A local Hub as HF_ENDPOINT, an empty Hub cache, an empty package, online."""
    package = tmp_path / "package"
    package.mkdir()
    monkeypatch.setattr(transport, "PACKAGE_WEIGHTS", package)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    for name in (*transport.OFFLINE_ENVS, "HF_HOME", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        server.add(REPO, COMMIT, "good.safetensors", GOOD)
        yield server


def fetch(name: str, data: bytes = GOOD, offline: bool | None = None):
    return transport.fetch(spec_of(name, data), hub={"repo": REPO, "revision": COMMIT}, offline=offline)


def test_good_file_lands_in_the_hub_cache_and_is_not_asked_for_again(hub, tmp_path):
    path = fetch("good.safetensors")
    assert path.read_bytes() == GOOD
    assert (tmp_path / "hub-cache") in path.parents and COMMIT in path.parts  # the Hub's cache, at the pinned commit
    assert [method for method, _ in hub.file_requests] == ["HEAD", "GET"]
    assert hub.file_requests[0][1] == f"/{REPO}/resolve/{COMMIT}/good.safetensors"
    assert fetch("good.safetensors") == path and len(hub.file_requests) == 2  # a pinned commit in the cache: no request


@pytest.mark.parametrize("kind,served,message", [
    ("corrupt", GOOD[:100] + bytes([GOOD[100] ^ 0xFF]) + GOOD[101:], "is corrupt or another file: sha256"),
    ("truncated", GOOD[: len(GOOD) // 2], "truncated or another file"),
])
def test_bad_file_is_one_error_and_leaves_nothing_in_the_cache(hub, tmp_path, kind, served, message):
    hub.add(REPO, COMMIT, f"{kind}.safetensors", served)
    with pytest.raises(ZooError, match=f"{kind}.safetensors from Hub repo {REPO}@{COMMIT[:12]} .*{message}.*"
                                       "removed it from the Hub cache"):
        fetch(f"{kind}.safetensors")
    assert cached_files(tmp_path / "hub-cache") == []


def test_missing_file_is_one_error_naming_repo_and_commit(hub, tmp_path):
    with pytest.raises(ZooError, match=f"absent.safetensors: could not get it from Hub repo {REPO}@{COMMIT[:12]}"):
        fetch("absent.safetensors")
    assert cached_files(tmp_path / "hub-cache") == []


def test_a_copy_damaged_in_the_cache_is_dropped_and_downloaded_again(hub, tmp_path):
    path = fetch("good.safetensors")
    blob = path.resolve()
    blob.chmod(0o644)
    blob.write_bytes(b"x" * len(GOOD))  # the same size, other bytes
    with pytest.raises(ZooError, match="corrupt or another file.*removed it from the Hub cache"):
        fetch("good.safetensors")
    assert cached_files(tmp_path / "hub-cache") == []
    assert fetch("good.safetensors").read_bytes() == GOOD


def test_offline_uses_the_cached_copy_and_asks_nothing(hub, monkeypatch):
    path = fetch("good.safetensors")
    asked = len(hub.file_requests)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert fetch("good.safetensors") == path
    assert len(hub.file_requests) == asked


@pytest.mark.parametrize("how", ["HF_HUB_OFFLINE", "ZOO_OFFLINE", "argument"])
def test_offline_without_a_cached_copy_is_one_error_and_asks_nothing(hub, monkeypatch, how):
    if how != "argument":
        monkeypatch.setenv(how, "1")
    with pytest.raises(ZooError, match=f"good.safetensors is not available offline; tried: the package .*the Hub "
                                       f"cache .* for {REPO}@{COMMIT[:12]}"):
        fetch("good.safetensors", offline=True if how == "argument" else None)
    assert hub.file_requests == []


@pytest.mark.parametrize("revision", ["main", "v1.0", "0123abc", "G" * 40])
def test_revision_must_be_a_full_commit(hub, revision):
    with pytest.raises(ZooError, match=f"Hub revision '{revision}' of {REPO} is not a full 40-character commit hash"):
        transport.fetch(spec_of("good.safetensors", GOOD), hub={"repo": REPO, "revision": revision})
    assert hub.file_requests == []


def test_a_file_with_no_hub_repository_and_not_shipped_is_one_error(hub):
    with pytest.raises(ZooError, match="good.safetensors is not available; tried: .*the package .*no Hub repository"):
        transport.fetch(spec_of("good.safetensors", GOOD))


def test_a_release_loads_from_the_hub_by_name(hub, tmp_path):
    """The shipped GRU's card, its file only on the Hub: load and create_model download, check and load it."""
    name = "gru_1x128.adding_t100"
    card = json.loads(json.dumps(pretrained.manifest(SHIPPED / "manifest.json")[name]))
    card["hub"] = {"repo": REPO, "revision": COMMIT}
    (transport.PACKAGE_WEIGHTS / "manifest.json").write_text(json.dumps({"version": 1, "models": {name: card}}))
    hub.add(REPO, COMMIT, card["file"]["name"], (SHIPPED / card["file"]["name"]).read_bytes())
    loaded = pretrained.load(name)
    assert not loaded.model.training and len(hub.file_requests) == 2
    model = zoo.create_model(name, pretrained=True)
    assert model.training and len(hub.file_requests) == 2  # from the Hub's cache
    for key, value in loaded.model.state_dict().items():
        assert model.state_dict()[key].equal(value)



# ----------------------------------------------------------------------------- the cards the Hub reads
@pytest.mark.parametrize("name", sorted(pretrained.manifest(SHIPPED / "manifest.json")))
def test_shipped_card_is_the_codes_and_the_hub_reads_its_results(name):
    """Each shipped card is what scripts/write_model_cards.py writes (never edited by hand), and
    huggingface_hub parses its model-index back into one EvalResult per test metric, with the dataset."""
    from huggingface_hub import ModelCard

    from zoo.app.release import card_text

    entry = pretrained.manifest(SHIPPED / "manifest.json")[name]
    text = (SHIPPED / f"{name}.md").read_text(encoding="utf-8")
    assert text == card_text(name, entry)
    data = ModelCard(text).data
    assert data.library_name == "rnn-zoo" and data.model_name == name
    results = {r.metric_type: r for r in data.eval_results}
    assert set(results) == set(entry["metrics"]) and next(iter(results)) == entry["metric"]
    for metric, result in results.items():
        assert result.metric_value == entry["metrics"][metric]
        assert result.dataset_type == entry["task"]["name"] and result.dataset_split == "test"
        assert result.dataset_name.startswith(entry["data"]["class"])


def test_card_task_types_follow_the_task_facts():
    from zoo.app.model_card import hub_task_type

    models = pretrained.manifest(SHIPPED / "manifest.json")
    assert hub_task_type(models["lstm_2x200.ptb_word"]) == "text-generation"
    assert hub_task_type(models["lstm_1x128.smnist"]) == "image-classification"
    assert hub_task_type(models["gru_1x128.adding_t100"]) == "adding_T100"  # no Hub task: its own name


# ----------------------------------------------------------------------------- data from Hub datasets, pinned
TEXT_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture
def text_source(tmp_path, monkeypatch):
    """tinyshakespeare/input.txt as a small known file whose Hub source is pinned; load_dataset recorded."""
    import datasets

    from conftest import register_files
    from tasks import hf_datasets

    register_files(monkeypatch, tmp_path / "originals", {"tinyshakespeare/input.txt": "To be, or not to be\n"})
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ZOO_HUB_ROOT", raising=False)
    rows = {"train": ["To be, "], "validation": ["or not "], "test": ["to be\n"]}
    calls = []

    def load_dataset(path, name=None, *, split, revision=None, **kwargs):
        calls.append({"path": path, "name": name, "split": split, "revision": revision, **kwargs})
        return {"text": rows[split]}

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)

    def pin(revision):
        source = hf_datasets.HubText("karpathy/tiny_shakespeare", None, ("train", "validation", "test"), "text",
                                     hf_datasets._concatenate, revision)
        monkeypatch.setattr(hf_datasets, "HUB_TEXT", {**hf_datasets.HUB_TEXT, "tinyshakespeare/input.txt": source})

    return pin, calls


def test_hub_dataset_is_read_at_its_pinned_commit(text_source, tmp_path):
    from tasks import hf_datasets

    pin, calls = text_source
    pin(TEXT_COMMIT)
    path = hf_datasets.fetch_text_from_hub("tinyshakespeare/input.txt")
    assert path.read_text() == "To be, or not to be\n"
    assert [(c["path"], c["split"], c["revision"]) for c in calls] == [
        ("karpathy/tiny_shakespeare", split, TEXT_COMMIT) for split in ("train", "validation", "test")]


def test_an_unpinned_hub_dataset_is_not_read(text_source, tmp_path):
    from tasks import hf_datasets

    pin, calls = text_source
    pin(None)
    with pytest.raises(ZooError, match="Hub dataset 'karpathy/tiny_shakespeare' \\(for tinyshakespeare/input.txt\\) "
                                       "has no pinned commit"):
        hf_datasets.fetch_text_from_hub("tinyshakespeare/input.txt")
    assert calls == [] and not (tmp_path / "cache" / "tinyshakespeare").exists()


@pytest.mark.parametrize("revision", ["main", "refs/convert/parquet", "abc123"])
def test_a_hub_dataset_revision_must_be_a_full_commit(revision):
    from tasks import hf_datasets

    with pytest.raises(ZooError, match=f"revision '{revision}' is not a full 40-character commit hash"):
        hf_datasets.HubText("some/data", None, ("train",), "text", hf_datasets._concatenate, revision)
