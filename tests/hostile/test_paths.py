"""Hostile paths: names that climb out of their folder, links that lead out of a cache or a records folder.

Each bait is a real file outside the folder the zoo should stay in, with exactly the content
the manifest or checksum asks for (so following the path would succeed quietly). The promise
is that nothing is read from it or written near it, and that the refusal names the path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pytest

from hostile_release import COMMIT, GOOD, GOOD_BYTES, NAME, REPO, card, data_left
from hostile_suite import BENCH, MODEL, TIER, suite_argv
from hostile_trials import Trial
from tasks import datafiles
from zoo import pretrained
from zoo.app.cli import main
from zoo.errors import ZooError


def _manifest(folder: Path, entry: dict) -> None:
    (folder / "manifest.json").write_text(json.dumps({"version": 1, "models": {NAME: entry}}))


def _unchanged(path: Path, data: bytes) -> bool:
    return path.is_file() and path.read_bytes() == data


NAMES = Trial(
    "paths", "manifest names that leave the package folder",
    does="A manifest entry whose weights or vocabulary file name is `../bait`, an absolute path, a sub-folder, or "
         "holds a NUL, a newline or an ANSI escape; the bait outside holds exactly the bytes the entry's sha256 asks for.",
    promise="One error saying the name is not a plain file name; the bait is never opened (an audit hook watches "
            "every open).")


def _bait_names(bait: Path) -> dict[str, str]:
    return {"dot-dot": "../bait.safetensors", "absolute": str(bait), "sub-folder": "sub/w.safetensors",
            "nul": "w\x00.safetensors", "newline": "w\n.safetensors", "ansi-escape": "w\x1b[2J.safetensors",
            "dot-dot-alone": ".."}


@NAMES
@pytest.mark.parametrize("kind", list(_bait_names(Path("/x"))))
def test_a_weights_name_that_leaves_the_package_is_refused_unread(hub, tmp_path, opened, kind):
    bait = tmp_path / "bait.safetensors"  # beside the package folder: "../bait.safetensors" from inside it
    bait.write_bytes(GOOD_BYTES)
    (hub.package / "sub").mkdir()
    shutil.copy(bait, hub.package / "sub" / "w.safetensors")
    name = _bait_names(bait)[kind]
    _manifest(hub.package, card(GOOD_BYTES, name))
    opened.watch()
    with pytest.raises(ZooError, match=r"file name in the manifest .* is not a plain file name") as err:
        pretrained.load(NAME)
    assert "\n" not in str(err.value)
    assert opened.of(bait) == [] and opened.of(hub.package / "sub" / "w.safetensors") == []


@NAMES
def test_a_vocabulary_name_that_leaves_the_package_is_refused_unread(hub, tmp_path, opened):
    bait = tmp_path / "vocab.json"
    bait.write_text(json.dumps(["a", "b"]))
    (hub.package / "w.safetensors").write_bytes(GOOD_BYTES)
    entry = card(GOOD_BYTES)
    entry["hub"] = None
    entry["extras"] = {"vocab": {"name": "../vocab.json", "bytes": bait.stat().st_size,
                                 "sha256": hashlib.sha256(bait.read_bytes()).hexdigest()}}
    _manifest(hub.package, entry)
    opened.watch()
    with pytest.raises(ZooError, match=r"file name in the manifest '../vocab.json' is not a plain file name"):
        pretrained.load(NAME)
    assert opened.of(bait) == []


HUB_LINK = Trial(
    "paths", "a link in the Hub cache that leads out of it",
    does="The Hub cache's snapshot entry for a pinned file is a symlink to a file outside the cache: one holding the "
         "published bytes, one holding other bytes (which the cache's clean-up of a bad copy would delete).",
    promise="Refused with one error naming the link and where it leads; the outside file is neither read nor removed, "
            "only the link is; the next load downloads the real file into the cache.")


@HUB_LINK
@pytest.mark.parametrize("bait_bytes", [GOOD_BYTES, b"somebody's file"], ids=["published-bytes", "other-bytes"])
def test_a_hub_cache_link_out_of_the_cache_is_neither_read_nor_removed(hub, tmp_path, opened, bait_bytes):
    bait = tmp_path / "elsewhere" / "precious.bin"
    bait.parent.mkdir()
    bait.write_bytes(bait_bytes)
    entry = card(GOOD_BYTES)
    _manifest(hub.package, entry)
    hub.add(REPO, COMMIT, "w.safetensors", GOOD_BYTES)
    snapshot = hub.cache / f"models--{REPO.replace('/', '--')}" / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (snapshot / "w.safetensors").symlink_to(bait)
    opened.watch()
    with pytest.raises(ZooError, match=r"w.safetensors in the Hub cache .* leads outside .*precious.bin.*removed the link"):
        pretrained.load(NAME)
    assert opened.of(bait) == [] and _unchanged(bait, bait_bytes)
    assert not (snapshot / "w.safetensors").is_symlink()
    loaded = pretrained.load(NAME).model.state_dict()  # the next try downloads the published file
    assert all(loaded[k].equal(v) for k, v in GOOD.items()) and _unchanged(bait, bait_bytes)
    assert len(data_left(hub.cache)) == 2


DATA_LINK = Trial(
    "paths", "a link in the data cache that leads out of it",
    does="In the data cache (`ZOO_CACHE_DIR`), `ptb/ptb.train.txt` is a symlink to an outside file with the right "
         "checksum; or the folder `ptb/` is a symlink to an outside folder and the file is downloaded (from a "
         "`file://` address).",
    promise="One error naming the entry and where it leads; the outside file is never opened and nothing is "
            "written into the outside folder.")


@pytest.fixture
def data_cache(tmp_path, monkeypatch):
    text = b" the cat sat \n" * 40
    source = tmp_path / "site" / "ptb.train.txt"
    source.parent.mkdir()
    source.write_bytes(text)
    known = dict(datafiles.FILES)
    known["ptb/ptb.train.txt"] = datafiles.DataFile("ptb/ptb.train.txt", len(text), hashlib.sha256(text).hexdigest(),
                                                    (source.as_uri(),))
    monkeypatch.setattr(datafiles, "FILES", known)
    monkeypatch.setenv(datafiles.ENV_CACHE_DIR, str(tmp_path / "cache"))
    for env in datafiles.OFFLINE_ENVS:
        monkeypatch.delenv(env, raising=False)
    (tmp_path / "cache").mkdir()
    return tmp_path / "cache", text


@DATA_LINK
def test_a_data_cache_file_linked_out_of_the_cache_is_refused_unread(data_cache, tmp_path, opened):
    cache, text = data_cache
    bait = tmp_path / "outside.txt"
    bait.write_bytes(text)
    (cache / "ptb").mkdir()
    (cache / "ptb" / "ptb.train.txt").symlink_to(bait)
    opened.watch()
    with pytest.raises(ZooError, match=r"data file ptb/ptb.train.txt in the cache .* leads outside .*outside.txt"):
        datafiles.fetch("ptb/ptb.train.txt")
    assert opened.of(bait) == [] and _unchanged(bait, text)


@DATA_LINK
def test_a_data_cache_folder_linked_out_of_the_cache_gets_no_download(data_cache, tmp_path):
    cache, _ = data_cache
    outside = tmp_path / "outside"
    outside.mkdir()
    (cache / "ptb").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ZooError, match=r"data file ptb/ptb.train.txt in the cache .* leads outside"):
        datafiles.fetch("ptb/ptb.train.txt", offline=False)
    assert list(outside.iterdir()) == []


RECORDS_LINK = Trial(
    "paths", "links and odd files in a records folder",
    does="A records folder whose `<benchmark>/` is a symlink to an outside folder (for `zoo bench run`); one holding a "
         "symlink to a record outside it, or a named pipe called `x.json` (for `zoo leaderboard build`).",
    promise="`zoo bench run` writes nothing (no lock, no record) through the link and `zoo leaderboard build` reads "
            "nothing through it and does not block on the pipe: each ends in one `zoo: error:` line naming the path, "
            "exit status 2, and no board is written.")


def _zoo(*argv) -> tuple[int, str]:
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main([str(a) for a in argv])
    return code, err.getvalue()


@RECORDS_LINK
def test_bench_run_writes_nothing_through_a_link_out_of_the_records_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / BENCH).symlink_to(outside, target_is_directory=True)
    code, err = _zoo(*suite_argv(0))
    assert code == 2 and err.startswith("zoo: error: run record") and "leads outside" in err, err
    assert len(err.strip().splitlines()) == 1
    assert list(outside.rglob("*")) == [] and not (tmp_path / "w").exists()


@RECORDS_LINK
def test_build_reads_no_record_through_a_link_out_of_the_records_folder(tmp_path, uninterrupted, opened):
    outside = tmp_path / "outside.json"
    shutil.copy(next((uninterrupted.folder / "r").rglob("*.s0.json")), outside)
    folder = tmp_path / "r" / BENCH / TIER
    folder.mkdir(parents=True)
    (folder / f"{MODEL}.s0.json").symlink_to(outside)
    opened.watch()
    code, err = _zoo("leaderboard", "build", "--records", tmp_path / "r", "--out", tmp_path / "out", "--readme",
                     tmp_path / "README.md", "--allow_dirty")
    assert code == 2 and "run record" in err and "leads outside" in err and "outside.json" in err, err
    assert opened.of(outside) == [] and not (tmp_path / "out").exists()


@RECORDS_LINK
def test_build_does_not_block_on_a_pipe_in_the_records_folder(tmp_path, uninterrupted, forker):
    folder = tmp_path / "r" / BENCH / TIER
    folder.mkdir(parents=True)
    shutil.copy(next((uninterrupted.folder / "r").rglob("*.s0.json")), folder)
    os.mkfifo(folder / "x.json")
    # In a child, so that a build blocked on the pipe is a failed case rather than a hung suite.
    child = forker.zoo("leaderboard", "build", "--records", "r", "--out", "out", "--readme", "README.md",
                       "--allow_dirty", cwd=tmp_path, kill_after=120)
    assert not child.killed, "zoo leaderboard build blocked reading a named pipe"
    assert child.code == 2 and "x.json is not a regular file" in child.err, child.err
    assert not (tmp_path / "out").exists()


RELEASE_NAMES = Trial(
    "paths", "a record whose names leave the release folders",
    does="`zoo pretrained export` of a run record whose model name is an absolute path or holds `/` or a newline, "
         "or whose weights file is `../../bait.safetensors` (an outside file with the record's sha256).",
    promise="One error naming the record and the bad name, before any file is read or written: nothing appears "
            "outside the release folder and the bait is never opened.")


@RELEASE_NAMES
@pytest.mark.parametrize("field, value", [("model", "{outside}/evil"), ("model", "a/b"), ("model", "a\nb"),
                                          ("weights", "../../bait.safetensors"), ("weights", "{outside}/bait.safetensors")])
def test_export_refuses_a_record_whose_names_leave_the_release_folders(tmp_path, uninterrupted, opened, field, value):
    from zoo.app import release
    from zoo.records import write_record

    outside = tmp_path / "outside"
    outside.mkdir()
    bait = outside / "bait.safetensors"
    record = json.loads(next((uninterrupted.folder / "r").rglob("*.s0.json")).read_text())
    shutil.copy(uninterrupted.folder / "w" / record["weights"]["file"], bait)
    record.update(state="unsolved", solved=False)  # a smoke run learns nothing; marked exportable, as tests/test_pretrained.py does
    value = value.format(outside=outside)
    if field == "model":
        record["model"] = value
    else:
        record["weights"]["file"] = value
    path = write_record(tmp_path / "record.json", record)
    weights_dir = tmp_path / "runs" / "weights"
    weights_dir.mkdir(parents=True)
    opened.watch()
    with pytest.raises(ZooError, match=r"run record .*record.json: its (model name|weights file) .* is not a plain file name"):
        release.export(path, tmp_path / "release", weights_dir=weights_dir)
    assert opened.of(bait) == []
    assert sorted(p.name for p in outside.iterdir()) == ["bait.safetensors"] and not (tmp_path / "release").exists()
