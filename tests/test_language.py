import math
import re

import lightning as L
import pytest
import torch

from tasks import datafiles, hf_datasets
from tasks.datafiles import shared_data_dir
from tasks.language import EOS, LanguageModelling, Windows, word_tokens
from zoo.errors import ZooError
from zoo.models.rnn import RNNConfig
from zoo.module import SequenceModel

SHARED = shared_data_dir()
needs_shared = pytest.mark.skipif(SHARED is None, reason="../shared/data is not beside this checkout")

from conftest import VALID  # noqa: E402  (tiny_ptb's validation text)
from conftest import register_files as _register  # noqa: E402


def test_word_tokens_put_eos_at_line_ends():
    assert word_tokens(" a b \n c \n") == ["a", "b", EOS, "c", EOS]


def test_vocabulary_from_training_split_only(tiny_ptb):
    dm = LanguageModelling("ptb", batch_size=2, bptt=3, data_dir=str(tiny_ptb))
    assert dm.vocab == ["the", "cat", "sat", EOS, "dog", "<unk>", "a", "ran"]
    valid = [dm.vocab[i] for i in dm.ids("valid")[:8].tolist()]
    assert valid == ["the", "dog", "ran", EOS, "a", "<unk>", "sat", EOS]  # zebra -> <unk>
    spec = dm.task_spec
    assert spec.input_size == spec.output_size == 8 and spec.head == "every" and spec.stateful
    assert spec.input_kind == "tokens" and spec.metrics == ("perplexity",)


def test_unknown_token_without_unk_is_an_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    _register(monkeypatch, tmp_path / "data", {"ptb/ptb.train.txt": " a b \n", "ptb/ptb.valid.txt": " a zebra \n",
                                               "ptb/ptb.test.txt": " a \n"})
    dm = LanguageModelling("ptb", batch_size=1, data_dir=str(tmp_path / "data"))
    with pytest.raises(ZooError, match="valid token 'zebra' of corpus 'ptb' is not in the vocabulary"):
        dm.ids("valid")


def test_windows_are_contiguous_streams():
    ids = torch.arange(23)
    windows = Windows(ids, batch_size=2, bptt=4)  # 2 streams of 11 tokens: 0..10 and 11..21
    xs, ys = zip(*(windows[k] for k in range(len(windows))))
    assert [x.shape[1] for x in xs] == [4, 4, 2]  # the last window is shorter
    stream0 = torch.cat([x[0] for x in xs])
    assert stream0.tolist() == list(range(10))
    assert torch.cat([y[1] for y in ys]).tolist() == list(range(12, 22))  # targets: the next token
    for x, y in zip(xs, ys):
        assert torch.equal(x[:, 1:], y[:, :-1])


def test_state_is_carried_detached_and_reset(tiny_ptb):
    dm = LanguageModelling("ptb", batch_size=2, bptt=3, data_dir=str(tiny_ptb))
    model = SequenceModel(dm.task_spec, RNNConfig(cell="lstm", hidden_size=8))
    loader = dm.train_dataloader()
    (x0, y0), (x1, y1) = list(loader)[:2]
    model.on_train_epoch_start()
    loss0 = model.training_step((x0, y0), 0)
    carried = model._state
    assert carried is not None and not carried[0].requires_grad  # detached: truncated BPTT
    loss0.backward()
    loss1 = model.training_step((x1, y1), 1)
    loss1.backward()  # would fail ("backward through the graph a second time") if the state were not detached
    fresh = model.task_loss(model(x1), y1)
    assert not torch.isclose(loss1, fresh)  # window 1 read on from window 0's state
    model.on_validation_epoch_start()
    assert model._state is None
    model.on_validation_epoch_end()
    assert model._state is not None  # training resumes its streams
    model.on_train_epoch_start()
    assert model._state is None


def test_perplexity_and_bpc_are_the_mean_cross_entropy(tiny_ptb):
    dm = LanguageModelling("ptb", batch_size=2, bptt=4, eval_batch_size=2, data_dir=str(tiny_ptb))
    model = SequenceModel(dm.task_spec, RNNConfig(cell="gru", hidden_size=8))
    trainer = L.Trainer(max_steps=5, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(model, dm)
    ppl = trainer.test(model, dm, verbose=False)[0]["test_perplexity"]
    # by hand: one pass over the test windows with the state carried, mean cross-entropy per token
    model.eval()
    nats, count, state = 0.0, 0, None
    with torch.no_grad():
        for x, y in dm.test_dataloader():
            out, state = model.run(x, state)
            nats += torch.nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), reduction="sum").item()
            count += y.numel()
    assert ppl == pytest.approx(math.exp(nats / count), rel=1e-4)


def test_vocabulary_is_kept_with_the_run(tiny_ptb):
    dm = LanguageModelling("ptb", batch_size=2, data_dir=str(tiny_ptb))
    state = dm.state_dict()
    assert state["vocab"] == dm.vocab
    dm.load_state_dict(state)
    with pytest.raises(ZooError, match="the checkpoint's vocabulary .* does not match this data's"):
        dm.load_state_dict({"corpus": "ptb", "vocab": ["a", "b"]})


def test_weight_tying(tiny_ptb):
    dm = LanguageModelling("ptb", batch_size=2, data_dir=str(tiny_ptb))
    model = SequenceModel(dm.task_spec, RNNConfig(cell="lstm", hidden_size=6), tie_weights=True)
    assert model.head.weight is model.embedding.weight
    assert model.embedding.weight.abs().max() <= 0.1  # U(-0.1, 0.1), not N(0, 1)
    with pytest.raises(ZooError, match=r"tie_weights needs embedding_size == the backbone's output size \(6\)"):
        SequenceModel(dm.task_spec, RNNConfig(cell="lstm", hidden_size=6), embedding_size=4, tie_weights=True)
    with pytest.raises(ZooError, match="tie_weights needs token inputs"):
        from tasks.adding import AddingProblem

        SequenceModel(AddingProblem().task_spec, tie_weights=True)


# ----------------------------------------------------------------- a bidirectional language model is refused
BIDIRECTIONAL_LM = (r"a bidirectional backbone cannot learn task 'ptb': it is a language model \(a stream predicted "
                    r"token by token\), and the backward direction would read each token before predicting it, "
                    r"seeing the future; use a unidirectional backbone \(bidirectional false\)")


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_a_bidirectional_language_model_is_refused_with_one_error(tiny_ptb, cell):
    dm = LanguageModelling("ptb", batch_size=2, bptt=3, data_dir=str(tiny_ptb))
    with pytest.raises(ZooError, match=BIDIRECTIONAL_LM):
        SequenceModel(dm.task_spec, RNNConfig(cell=cell, hidden_size=6, num_layers=2, bidirectional=True))
    SequenceModel(dm.task_spec, RNNConfig(cell=cell, hidden_size=6, num_layers=2))  # one way it is a model


def test_zoo_fit_refuses_a_bidirectional_language_model(tiny_ptb, tmp_path, monkeypatch, capsys):
    from zoo.app.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(["fit", "--data", "LanguageModelling", "--data.corpus", "ptb", "--data.data_dir", str(tiny_ptb),
                 "--data.batch_size", "2", "--data.bptt", "3", "--model.backbone.bidirectional", "true",
                 "--trainer.max_steps", "1", "--trainer.enable_progress_bar", "false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert re.fullmatch("zoo: error: " + BIDIRECTIONAL_LM, err[0]), err[0]
    assert not list(tmp_path.rglob("*.ckpt"))


def test_a_language_model_benchmark_refuses_a_bidirectional_model(tiny_ptb, tmp_path, capsys):
    """``zoo bench run`` with a bidirectional model of one's own on a language-model board: the same one error."""
    from zoo.app.catalogue import BENCHMARKS, get_benchmark
    from zoo.app.cli import main

    (tmp_path / "bi.yaml").write_text("name: bilstm_2x200\nbackbone: {cell: lstm, hidden_size: 8, num_layers: 2, "
                                      "bidirectional: true}\n")
    code = main(["bench", "run", "ptb_word", "--tier", "smoke", "--model_config", str(tmp_path / "bi.yaml"),
                 "--data_dir", str(tiny_ptb), "--records", str(tmp_path / "records"),
                 "--weights", str(tmp_path / "weights"), "--checkpoints", "none", "--no_progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and re.fullmatch("zoo: error: " + BIDIRECTIONAL_LM, err[-1]), err
    assert not list((tmp_path / "records").rglob("*.json"))
    # and no language-model board of the catalogue holds a bidirectional model
    for bench in BENCHMARKS.values():
        if bench.data_class == get_benchmark("ptb_word").data_class:
            assert not any(recipe.backbone.bidirectional for recipe in bench.models.values()), bench.name


@pytest.mark.parametrize("kwargs,message", [
    (dict(corpus="ptb2"), "unknown corpus 'ptb2'; valid choices: ptb, wikitext2, ptb_char, tinyshakespeare"),
    (dict(bptt=0), "bptt must be an integer >= 1, got 0"),
])
def test_bad_settings(kwargs, message):
    with pytest.raises(ZooError, match=message):
        LanguageModelling(**kwargs)


def test_missing_and_corrupt_files_name_the_file(tiny_ptb, tmp_path):
    (tiny_ptb / "ptb/ptb.valid.txt").write_text(VALID[:-5])
    with pytest.raises(ZooError, match=r"ptb\.valid\.txt .* is \d+ bytes \(truncated\): expected ptb/ptb.valid.txt"):
        LanguageModelling("ptb", data_dir=str(tiny_ptb))
    (tiny_ptb / "ptb/ptb.valid.txt").write_text(VALID.replace("zebra", "zebrb"))
    with pytest.raises(ZooError, match=r"ptb\.valid\.txt .* is corrupt or another file: sha256"):
        LanguageModelling("ptb", data_dir=str(tiny_ptb))
    (tiny_ptb / "ptb/ptb.valid.txt").unlink()
    with pytest.raises(ZooError, match=r"ptb\.valid\.txt is missing from data folder"):
        LanguageModelling("ptb", data_dir=str(tiny_ptb))
    with pytest.raises(ZooError, match="is not a folder"):
        LanguageModelling("ptb", data_dir=str(tmp_path / "nowhere"))


def test_offline_without_files_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("ZOO_DATA_DIR", raising=False)
    with pytest.raises(ZooError, match=r"ptb/ptb.train.txt .* is not in the cache .* downloads are off \(offline\)"):
        LanguageModelling("ptb", offline=True)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").rglob("*"))


def test_environment_variable_names_the_data_folder(tiny_ptb, monkeypatch):
    monkeypatch.setenv("ZOO_DATA_DIR", str(tiny_ptb))
    assert len(LanguageModelling("ptb").vocab) == 8


def _write_hub_dataset(root, repo: str, config: str, splits: dict[str, list[str]], column: str) -> None:
    """A dataset in the Hub's layout: parquet shards per split, configs declared in README.md."""
    pytest.importorskip("datasets")  # what the Hub route reads it with (a dependency, yet absent from some images)
    pq = pytest.importorskip("pyarrow.parquet")
    pa = pytest.importorskip("pyarrow")
    folder = root / repo
    lines = ["---", "configs:", f"- config_name: {config}", "  data_files:"]
    for split, rows in splits.items():
        (folder / config).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({column: rows}), folder / config / f"{split}-00000-of-00001.parquet")
        lines += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    (folder / "README.md").write_text("\n".join(lines + ["---", ""]))


def test_hub_route_rebuilds_the_original_bytes(tmp_path, monkeypatch):
    """WikiText rows as the Hub stores them (blank lines as ""), rebuilt and checked against the file's sha256."""
    original = {"train": " = A = \n \n a b c \n \n", "valid": " a b \n", "test": " c a \n"}
    _register(monkeypatch, tmp_path / "originals", {f"wikitext-2/wiki.{s}.tokens": t for s, t in original.items()})
    rows = {hub_split: [line if line != " \n" else "" for line in original[split].splitlines(keepends=True)]
            for split, hub_split in (("train", "train"), ("valid", "validation"), ("test", "test"))}
    _write_hub_dataset(tmp_path / "hub", "Salesforce/wikitext", "wikitext-2-v1", rows, "text")
    monkeypatch.setenv("ZOO_HUB_ROOT", str(tmp_path / "hub"))
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(datafiles, "download", _no_network)
    dm = LanguageModelling("wikitext2", batch_size=1)
    assert dm.vocab == ["=", "A", EOS, "a", "b", "c"]
    for split, text in original.items():
        assert (tmp_path / "cache" / f"wikitext-2/wiki.{split}.tokens").read_text() == text
    assert not list((tmp_path / "cache").rglob("*.part"))


def test_hub_rows_that_do_not_rebuild_the_file_are_rejected(tmp_path, monkeypatch):
    _register(monkeypatch, tmp_path / "originals", {"tinyshakespeare/input.txt": "To be, or not to be\n"})
    _write_hub_dataset(tmp_path / "hub", "karpathy/tiny_shakespeare", "default",
                       {"train": ["To be, or not "], "validation": ["to be"], "test": ["?\n"]}, "text")
    monkeypatch.setattr(hf_datasets, "HUB_TEXT", {**hf_datasets.HUB_TEXT, "tinyshakespeare/input.txt": hf_datasets.HubText(
        "karpathy/tiny_shakespeare", "default", ("train", "validation", "test"), "text", hf_datasets._concatenate)})
    monkeypatch.setenv("ZOO_HUB_ROOT", str(tmp_path / "hub"))
    monkeypatch.setenv("ZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(datafiles, "download", _no_network)
    with pytest.raises(ZooError, match=r"the Hub route failed too: .*rebuilt from another source \(not cached\).* sha256"):
        LanguageModelling("tinyshakespeare")
    assert not list((tmp_path / "cache").rglob("*.txt")) and not list((tmp_path / "cache").rglob("*.part"))


def _no_network(f, target):
    raise ZooError(f"could not download {f.path}: no network in this test")


@needs_shared
@pytest.mark.parametrize("corpus,vocab,sizes", [
    ("ptb", 10_000, (929_589, 73_760, 82_430)),
    ("wikitext2", 33_278, (2_088_628, 217_646, 245_569)),
    ("ptb_char", 50, None),
    ("tinyshakespeare", 65, (1_003_854, 55_770, 55_770)),
])
def test_real_corpora(corpus, vocab, sizes):
    dm = LanguageModelling(corpus, data_dir=str(SHARED))
    assert len(dm.vocab) == vocab
    if sizes:
        assert tuple(dm.ids(s).numel() for s in ("train", "valid", "test")) == sizes
    assert dm.task_spec.metrics == (("perplexity",) if corpus in ("ptb", "wikitext2") else ("bpc",))


def test_cli_trains_and_tests_a_language_model(tiny_ptb, tmp_path, monkeypatch):
    from zoo.app.cli import main

    monkeypatch.chdir(tmp_path)
    args = ["--data", "tasks.LanguageModelling", "--data.corpus", "ptb", "--data.data_dir", str(tiny_ptb),
            "--data.batch_size", "2", "--data.bptt", "3", "--model.backbone.hidden_size", "8",
            "--model.embedding_size", "8", "--model.tie_weights", "true", "--trainer.max_steps", "2",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]
    assert main(["fit", *args]) == 0
    (ckpt,) = tmp_path.glob("runs/lightning_logs/version_0/checkpoints/*.ckpt")
    saved = torch.load(ckpt, weights_only=True)
    assert saved["LanguageModelling"]["vocab"] == ["the", "cat", "sat", EOS, "dog", "<unk>", "a", "ran"]
    assert main(["test", *args, "--ckpt_path", str(ckpt)]) == 0
