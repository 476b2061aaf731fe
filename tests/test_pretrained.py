"""Pretrained models: registry, export, verified loading from every source, and the shipped weights' cards."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tasks.datafiles import shared_data_dir
from zoo.app import release as zoo_release
from zoo import transport, pretrained
from zoo.app.runner import execute, write_record
from zoo.app.cli import main
from zoo.errors import ZooError
from zoo.files import sha256_file
from zoo.registry import architecture, list_models

SHIPPED = pretrained.manifest()
ROOT = Path(__file__).resolve().parent.parent


def exportable(record, state="unsolved"):
    """A real run of a few steps learns nothing, so its state is "failed", and a failed run is never released.

    The release path is what these tests are about: the record is marked as a run that beat
    the trivial baseline (its numbers are left as they are, so the card still matches the weights).
    """
    return {**record, "state": state, "solved": False, "reason": f"marked {state} by the test to be exportable"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_config):
    """A real run of 4 steps (state "failed"), its record and weights."""
    root = tmp_path_factory.mktemp("release")
    record = execute(tiny_config("rnn_tanh.identity.clip1", steps=4), 0, weights_dir=root / "weights")
    return root, record


@pytest.fixture(scope="module")
def release(tiny_run):
    """A real run exported as a release: weights, card, manifest."""
    root, record = tiny_run
    path = write_record(root / "record.json", exportable(record))
    name, card = zoo_release.export(path, root / "out", weights_dir=root / "weights", tag="tiny")
    return root, name, card


@pytest.fixture
def isolated(tmp_path, monkeypatch, release):
    """The release as the package's manifest, an empty Hub cache, online."""
    root, name, card = release
    package = tmp_path / "package"
    package.mkdir()
    manifest = json.loads((root / "out" / "manifest.json").read_text())
    (package / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(transport, "PACKAGE_WEIGHTS", package)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    for env in transport.OFFLINE_ENVS:
        monkeypatch.delenv(env, raising=False)
    return package, root / "out", name, card


def test_export_writes_weights_card_and_manifest_with_hashes_computed_now(release):
    root, name, card = release
    out = root / "out"
    assert name == "rnn_tanh_identity_clip1.tiny"
    weights = out / card["file"]["name"]
    assert card["file"] == {"name": weights.name, "bytes": weights.stat().st_size, "sha256": sha256_file(weights)}
    assert sum(t.numel() for t in load_file(weights).values()) == card["params"]
    assert card["record"] == "gradient_study.smoke.rnn_tanh.identity.clip1.s0" and card["metric"] == "mse"
    text = (out / f"{name}.md").read_text()
    assert text.startswith("---\nlibrary_name: rnn-zoo") and card["file"]["sha256"] in text
    assert json.loads((out / f"{name}.json").read_text()) == card


def test_load_from_the_package_and_it_evaluates(isolated):
    package, out, name, card = isolated
    shutil.copy(out / card["file"]["name"], package)
    model = pretrained.load(name)
    assert not model.model.training and model.vocab is None
    value = zoo_release.evaluate(model)
    assert value == pytest.approx(card["metrics"]["mse"], rel=1e-5)


def test_without_the_file_or_a_hub_repository_only_a_local_path_loads(isolated, monkeypatch):
    """Downloads go through the Hub (tests/test_hub_transport.py); a release with no Hub repository has none."""
    package, out, name, card = isolated
    with pytest.raises(ZooError, match=f"{card['file']['name']} is not available; tried: .*no Hub repository"):
        pretrained.load(name)
    monkeypatch.setenv("ZOO_OFFLINE", "1")
    with pytest.raises(ZooError, match=f"{card['file']['name']} is not available offline; tried: "):
        pretrained.load(name)
    assert pretrained.load(name, path=out / card["file"]["name"]).name == name  # an explicit local path


def test_weights_of_another_architecture_and_unknown_names(isolated):
    package, out, name, card = isolated
    shutil.copy(out / card["file"]["name"], package)
    manifest = json.loads((package / "manifest.json").read_text())
    other = json.loads(json.dumps(card))
    other["model"]["backbone"]["hidden_size"] = 32
    manifest["models"]["other.tiny"] = other
    (package / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ZooError, match="do not fit other.tiny's architecture"):
        pretrained.load("other.tiny")
    with pytest.raises(ZooError, match="unknown pretrained model 'nope.x'; valid choices: other.tiny"):
        pretrained.load("nope.x")
    with pytest.raises(ZooError, match="no file at"):
        pretrained.load(name, path=out / "missing.safetensors")
    with pytest.raises(ZooError, match="bytes, expected .*: truncated or another file"):
        pretrained.load(name, path=out / f"{name}.json")


def test_hub_revision_must_be_pinned(isolated):
    package, out, name, card = isolated
    with pytest.raises(ZooError, match="is not a full 40-character commit hash"):
        transport.download_hub("someone/weights", "main", transport.FileSpec("x", 1, "0" * 64))


def test_list_models_with_wildcards(isolated):
    assert {"lstm_1x128", "lstm_2x200", "lstm_1x512"} <= set(list_models("lstm*"))
    assert list_models("*.tiny") == ["rnn_tanh_identity_clip1.tiny"]
    assert list_models("*", pretrained=False) == sorted(list_models("*", pretrained=False))
    assert "rnn_tanh_identity_clip1.tiny" not in list_models(pretrained=False)
    assert architecture("irnn_1x128").recurrent_init == "identity"
    with pytest.raises(ZooError, match="unknown architecture 'lstm_9x9'; valid choices: bigru_1x128, bilstm_1x128, cornn_1x128, .*gru_1x128"):
        architecture("lstm_9x9")


def test_cli(isolated, capsys, tmp_path):
    package, out, name, card = isolated
    shutil.copy(out / card["file"]["name"], package)
    assert main(["pretrained", "list", "rnn_*"]) == 0
    assert name in capsys.readouterr().out
    assert main(["pretrained", "info", name]) == 0
    assert card["file"]["sha256"] in capsys.readouterr().out
    assert main(["pretrained", "download", name]) == 0
    assert main(["pretrained", "verify", name]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["pretrained", "info", "lstm_1x128.nothing"]) == 2
    assert "unknown pretrained model" in capsys.readouterr().err
    assert main(["pretrained", "export", str(tmp_path / "no.json"), "--out", str(tmp_path / "o")]) == 2
    assert "does not exist" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the shipped weights
@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_card_matches_its_weights(name):
    """torchvision's schema test: size, sha256 and parameter count recomputed from the real file."""
    card = SHIPPED[name]
    path = transport.PACKAGE_WEIGHTS / card["file"]["name"]
    assert path.stat().st_size == card["file"]["bytes"]
    assert sha256_file(path) == card["file"]["sha256"]
    model = pretrained.load(name)
    assert sum(p.numel() for p in model.model.parameters()) == card["params"]
    for extra in card.get("extras", {}).values():
        assert sha256_file(transport.PACKAGE_WEIGHTS / extra["name"]) == extra["sha256"]


def test_shipped_weights_stay_under_20_mb():
    total = sum(p.stat().st_size for p in transport.PACKAGE_WEIGHTS.glob("*") if p.is_file())
    assert total < 20 * 2**20


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_scores_its_card_on_a_slice(name):
    card = SHIPPED[name]
    if card["data"]["class"] in ("SequentialMNIST", "LanguageModelling") and shared_data_dir() is None:
        pytest.skip("needs the real test set (../shared/data)")
    model = pretrained.load(name)
    value = zoo_release.evaluate(model, limit_batches=0.2, data_dir=str(shared_data_dir()) if shared_data_dir() else None)
    expected = card["metrics"][card["metric"]]
    assert abs(value - expected) <= zoo_release.SLICE_TOLERANCE * abs(expected), (value, expected)
    assert torch.isfinite(torch.tensor(value))


def test_language_model_release_carries_its_vocabulary(tmp_path, monkeypatch):
    from tasks import datafiles
    from zoo.app.catalogue import get_benchmark

    known = dict(datafiles.FILES)
    texts = {"train": " the cat sat \n a dog ran <unk> \n" * 30, "valid": " a cat ran \n" * 10, "test": " the dog sat \n" * 10}
    for split, text in texts.items():
        path = tmp_path / "data" / "ptb" / f"ptb.{split}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        known[f"ptb/ptb.{split}.txt"] = datafiles.DataFile(f"ptb/ptb.{split}.txt", path.stat().st_size, sha256_file(path))
    monkeypatch.setattr(datafiles, "FILES", known)
    config = get_benchmark("ptb_word").run_config("smoke", "lstm_2x200")
    config["model"]["backbone"]["hidden_size"] = 8
    config["data"]["args"].update(batch_size=4, bptt=5)
    data_dir = str(tmp_path / "data")
    record = execute(config, 0, data_dir=data_dir, weights_dir=tmp_path / "w")
    assert set(record["data"]) == {"ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"}  # the files' sha256
    name, card = zoo_release.export(write_record(tmp_path / "r.json", exportable(record, "finished")),
                                   tmp_path / "out", weights_dir=tmp_path / "w", data_dir=data_dir)
    assert name == "lstm_2x200.ptb_word" and card["extras"]["vocab"]["name"] == "lstm_2x200.ptb_word.vocab.json"
    vocab = tmp_path / "out" / card["extras"]["vocab"]["name"]
    assert card["extras"]["vocab"] == {"name": vocab.name, "bytes": vocab.stat().st_size, "sha256": sha256_file(vocab)}
    # a language model is evaluated as a stream: eval_batch_size streams in windows of bptt, the state carried on
    assert card["evaluation"] == {"split": "test", "batch_size": config["data"]["args"].get("eval_batch_size", 10),
                                  "mode": "stream", "bptt": 5}
    assert "| evaluation | as a stream: the test split in 10 streams read in windows of 5 tokens (BPTT), the state " \
           "carried from window to window |" in (tmp_path / "out" / f"{name}.md").read_text()
    assert card["state"] == "finished" and card["seeds"]["n"] == 1 and card["selected_by"] == "record"
    assert "research use only" in card["data_licence"]
    monkeypatch.setattr(transport, "PACKAGE_WEIGHTS", tmp_path / "out")
    model = pretrained.load(name)
    assert model.vocab[:4] == ["the", "cat", "sat", "<eos>"] and len(model.vocab) == card["task"]["input_size"]
    ids = model.encode(["the", "zebra"])
    assert ids.tolist() == [[0, model.vocab.index("<unk>")]]
    assert model.model(ids).shape == (1, 2, len(model.vocab))
    value = zoo_release.evaluate(model, data_dir=data_dir)
    assert value == pytest.approx(card["metrics"]["perplexity"], rel=1e-5)


@pytest.mark.skipif(shared_data_dir() is None, reason="needs ../shared/data (MNIST)")
def test_prepare_images_matches_the_training_pipeline(tmp_path):
    from tasks.mnist import SequentialMNIST
    from tasks.mnist import read_idx, IMAGE_MAGIC

    data = SequentialMNIST(permuted=True, permutation_seed=3, data_dir=str(shared_data_dir()))
    images_path, _ = data.file_paths("test")
    raw = read_idx(images_path, IMAGE_MAGIC)[:5]
    card = {"task": {"name": "psmnist"}, "metric": "accuracy"}
    preprocessing = data.release_facts()  # what an export writes into the card
    assert preprocessing["pixel_order"] == data.permutation.tolist()
    model = pretrained.Pretrained("x", None, card, None, json.loads(json.dumps(preprocessing)))
    assert torch.equal(model.prepare_images(raw), data.dataset("test").x[:5])
    shipped = pretrained.load("lstm_1x128.smnist")  # its card's preprocessing is in the same fields
    plain = SequentialMNIST(data_dir=str(shared_data_dir()))
    assert torch.equal(shipped.prepare_images(raw), plain.dataset("test").x[:5])


# ----------------------------------------------------------------------------- releases selected by validation
def _run(seed, val, test, *, mode="min", metric="mse", state="unsolved", best=True, model="m", diverged=False):
    """A record as select_by_validation reads it: validation and test figures of the target metric."""
    return {"id": f"b.cpu.{model}.s{seed}", "benchmark": "b", "tier": "cpu", "model": model, "seed": seed,
            "task": {"target_metric": metric, "target_mode": mode}, "state": state, "diverged": diverged,
            "metrics": {"test": {metric: test}, "val": {metric: val},
                        "best": {"metric": f"val_{metric}", "value": val, "step": 10} if best else {}}}


def test_select_by_validation_picks_the_best_validation_seed_never_the_best_test_seed():
    runs = [_run(0, val=0.30, test=0.10), _run(1, val=0.20, test=0.15), _run(2, val=0.25, test=0.12)]
    assert min(runs, key=lambda r: r["metrics"]["test"]["mse"])["seed"] == 0  # the test split would pick seed 0
    assert zoo_release.select_by_validation(runs)["seed"] == 1
    # accuracy: higher is better, on validation too
    runs = [_run(0, 0.90, 0.99, mode="max", metric="accuracy"), _run(1, 0.95, 0.91, mode="max", metric="accuracy")]
    assert zoo_release.select_by_validation(runs)["seed"] == 1
    # a tie goes to the lower seed, in whatever order the runs come
    assert zoo_release.select_by_validation([_run(2, 0.2, 0.1), _run(1, 0.2, 0.3), _run(3, 0.4, 0.0)])["seed"] == 1


def test_select_by_validation_reads_the_best_then_the_last_validation():
    no_best = _run(0, 0.10, 0.5, best=False)  # metrics["val"] only
    assert zoo_release.validation_figure(no_best) == {"metric": "val_mse", "value": 0.10, "source": "last",
                                                      "step": None}
    assert zoo_release.select_by_validation([no_best, _run(1, 0.2, 0.1)])["seed"] == 0
    best = _run(1, 0.2, 0.1)
    best["metrics"]["val"]["mse"] = 0.9  # the last validation was worse than the best one: the best counts
    assert zoo_release.validation_figure(best)["value"] == 0.2
    other = _run(2, 0.05, 0.1)
    other["metrics"]["best"]["metric"] = "val_loss"  # a best of another metric is not this one's
    assert zoo_release.validation_figure(other)["source"] == "last"
    nan, diverged = _run(3, float("nan"), 0.0), _run(4, 0.01, 0.0, diverged=True, state="diverged")
    assert zoo_release.select_by_validation([nan, diverged, _run(5, 0.3, 0.2)])["seed"] == 5
    with pytest.raises(ZooError, match=r"no run of m on b \[cpu\] has a finite validation mse .*seeds 3, 4"):
        zoo_release.select_by_validation([nan, diverged])
    with pytest.raises(ZooError, match="among the seeds of one model on one board; got runs of m on b"):
        zoo_release.select_by_validation([_run(0, 0.1, 0.1), _run(1, 0.1, 0.1, model="n")])
    with pytest.raises(ZooError, match="no runs to select a release from"):
        zoo_release.select_by_validation([])


def _board(record, root, figures):
    """Records of one model's seeds, ``figures`` = {seed: (val, test, state)}, laid out as zoo bench writes them."""
    paths = {}
    for seed, (val, test, state) in figures.items():
        r = json.loads(json.dumps(record))
        r.update(seed=seed, id=f"{r['benchmark']}.{r['tier']}.{r['model']}.s{seed}", state=state,
                 solved=state == "solved", reason=f"{state}, set by the test")
        r["metrics"]["test"]["mse"], r["metrics"]["val"]["mse"] = test, val + 0.05
        r["metrics"]["best"] = {"metric": "val_mse", "value": val, "step": 3}
        paths[seed] = write_record(root / r["benchmark"] / r["tier"] / f"{r['model']}.s{seed}.json", r)
    return paths


# seed 0 is the best on test, seed 1 on validation; seed 3 failed (no median, never released)
FIGURES = {0: (0.30, 0.10, "unsolved"), 1: (0.20, 0.15, "unsolved"), 2: (0.25, 0.12, "unsolved"),
           3: (0.50, 0.20, "failed")}


def _check_card(card, out, name, record, selected_by):
    assert card["selected_by"] == selected_by
    assert json.loads((out / "manifest.json").read_text())["models"][name]["selected_by"] == selected_by
    assert card["seeds"] == {"metric": "mse", "median": 0.12, "n": 3, "runs": 4, "seeds": [0, 1, 2, 3],
                             "states": {"solved": 0, "unsolved": 3, "finished": 0, "failed": 1, "diverged": 0}}
    assert card["baseline"]["metric"] == "mse" and card["baseline"]["value"] == record["task"]["baselines"]["mse"]
    assert card["evaluation"] == {"split": "test", "batch_size": 500, "mode": "per-sequence", "seq_len": 12,
                                  "test_size": 16}  # eval_batch_size: the DataModule's default, not in the args
    assert card["state"] == "unsolved"
    text = (out / f"{name}.md").read_text()
    for line in (f"| test mse (this seed) | {card['metrics']['mse']:.6g} (seed {card['seed']}) |",
                 "| test mse, median over seeds | 0.12 (n = 3 scored of 4 runs; only solved, unsolved and finished "
                 "seeds count) |",
                 f"| trivial baseline, mse | {card['baseline']['value']:.4g} (always predicting 1.0) |",
                 "| state of this run | unsolved: unsolved, set by the test |",
                 "| evaluation | per-sequence, each from a fresh state, in batches of 500; seq_len (T) 12; 16 test "
                 "sequences |"):
        assert line in text, (line, text)
    assert json.loads((out / f"{name}.json").read_text()) == card


def test_ship_script_and_cli_release_the_seed_picked_by_validation(tiny_run, tmp_path, capsys):
    import importlib.util

    root, record = tiny_run
    records = tmp_path / "records"
    _board(record, records, FIGURES)
    spec = importlib.util.spec_from_file_location("ship_pretrained", ROOT / "scripts" / "ship_pretrained.py")
    ship = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ship)
    out = tmp_path / "shipped"
    assert ship.main(["--benchmarks", "gradient_study", "--tier", "smoke", "--records", str(records),
                      "--weights_dir", str(root / "weights"), "--out", str(out)]) == 0
    name = "rnn_tanh_identity_clip1.gradient_study"
    card = json.loads((out / "manifest.json").read_text())["models"][name]
    assert card["seed"] == 1 and card["record"] == "gradient_study.smoke.rnn_tanh.identity.clip1.s1"
    assert card["metrics"]["mse"] == 0.15  # the selected seed's test figure, not the best test figure (0.10)
    assert card["val"] == {"metric": "val_mse", "value": 0.20, "source": "best", "step": 3}
    _check_card(card, out, name, record, "val")
    text = (out / f"{name}.md").read_text()
    assert "| selected by | validation: the best val_mse of the model's seeds, 0.2 (best, step 3); never the test " \
           "split |" in text
    assert "seed 1 by val_mse 0.2; test mse 0.15 (median 0.12, n=3)" in capsys.readouterr().out

    # zoo pretrained export --benchmark --model: the same pick
    cli_out = tmp_path / "cli"
    assert main(["pretrained", "export", "--benchmark", "gradient_study", "--tier", "smoke", "--model",
                 "rnn_tanh.identity.clip1", "--records", str(records), "--weights_dir", str(root / "weights"),
                 "--out", str(cli_out)]) == 0
    assert json.loads((cli_out / f"{name}.json").read_text()) == card
    # one named record: its card still carries the median over the seeds beside it, selected_by "record"
    named_out = tmp_path / "named"
    path = records / "gradient_study" / "smoke" / "rnn_tanh.identity.clip1.s0.json"
    name0, card0 = zoo_release.export(path, named_out, weights_dir=root / "weights")
    assert card0["seed"] == 0 and card0["metrics"]["mse"] == 0.10
    _check_card(card0, named_out, name0, record, "record")
    with pytest.raises(ZooError, match=r"run gradient_study.smoke.rnn_tanh.identity.clip1.s0 is not the seed with "
                                       r"the best validation value of its model \(.*clip1.s1 is\)"):
        zoo_release.export(path, tmp_path / "wrong", weights_dir=root / "weights", selected_by="val")
    assert not (tmp_path / "wrong").exists()


def _files(folder):
    return sorted(p.relative_to(folder) for p in folder.rglob("*")) if folder.exists() else None


def test_export_refuses_a_run_that_did_not_beat_the_baseline_and_writes_nothing(tiny_run, tmp_path):
    root, record = tiny_run
    assert record["state"] == "failed"  # 4 steps: within 5% of the baseline's way to a perfect score
    test, baseline = record["metrics"]["test"]["mse"], record["task"]["baselines"]["mse"]
    out = tmp_path / "out"
    out.mkdir()
    (out / "other.txt").write_text("there before")
    diverged = {**record, "state": "diverged", "solved": False}
    no_state = {k: v for k, v in record.items() if k not in ("state", "solved", "reason")}  # derived: failed
    for state, r in (("failed", record), ("diverged", diverged), ("failed", no_state)):
        path = write_record(tmp_path / f"{state}.json", r)
        with pytest.raises(ZooError) as info:
            zoo_release.export(path, out, weights_dir=root / "weights", tag="x")
        assert str(info.value) == (
            f"run gradient_study.smoke.rnn_tanh.identity.clip1.s0 is {state}, so it is not released: test mse "
            f"{test:.4g} against the trivial baseline's {baseline:.4g} (a release must cover 5% of the way from the "
            "baseline to a perfect score)")
        assert _files(out) == [Path("other.txt")]  # nothing new, nothing half-written
        with pytest.raises(ZooError, match=f"is {state}, so it is not released"):
            zoo_release.export(path, tmp_path / "new", weights_dir=root / "weights")
        assert not (tmp_path / "new").exists()
