"""A full disk: each write of the zoo made in a child process held to a file-size limit by the kernel (RLIMIT_FSIZE).

The child ignores SIGXFSZ, so a write past the limit fails with EFBIG ("File too large") as
it would on a full disk, instead of killing the process. Whatever was being written (a record,
weights, a checkpoint mid-run, a release, a download), the promise is the same: one clear error
naming the file, the file that was there before exactly as it was, and no half-written file left.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from hostile_suite import BENCH, CHECKPOINT_EVERY, MODEL, TIER, assert_same_runs, read_records, suite_argv
from hostile_trials import Trial
from hub_server import FakeHub
from zoo.files import temp_names


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _too_large(child, *needles: str) -> str:
    """The child's one error: a ZooError (or the command's one line) saying the file could not be written."""
    if child.result and child.result.get("ok") is False and child.result["type"] != "SystemExit":
        assert child.result["type"] == "ZooError", child.result.get("traceback", child.result)
        message = child.result["message"]
    else:
        assert child.code == 2 and child.err.startswith("zoo: error: "), (child.code, child.err[-3000:])
        message = child.err.strip()
        assert len(message.splitlines()) == 1, message
    assert "File too large" in message, message
    for needle in needles:
        assert needle in message, (needle, message)
    return message


RECORD_AND_WEIGHTS = Trial(
    "full disk", "a record or weights written onto a full disk",
    does="`zoo.records.write_record` of a record onto an existing one, and `zoo.app.runner.save_weights` onto an "
         "existing weights file, each in a child whose file-size limit is below the new file's size.",
    promise="One ZooError naming the file and saying it is too large; the previous file is byte for byte as it was; "
            "no temporary file is left beside it.")


@RECORD_AND_WEIGHTS
@pytest.mark.parametrize("limit", [0, 4096], ids=["nothing-fits", "part-fits"])
def test_a_record_written_onto_a_full_disk_leaves_the_previous_one_whole(tmp_path, forker, uninterrupted, limit):
    source = next((uninterrupted.folder / "r").rglob("*.s0.json"))
    path = tmp_path / "r" / "record.json"
    path.parent.mkdir()
    path.write_text('{"previous": "record"}\n')
    child = forker.run("hostile_writers:write_record_from", str(source), str(path), cwd=tmp_path, fsize=limit)
    _too_large(child, f"cannot write {path}")
    assert path.read_text() == '{"previous": "record"}\n' and temp_names(path) == []


@RECORD_AND_WEIGHTS
def test_weights_written_onto_a_full_disk_leave_the_previous_file_whole(tmp_path, forker):
    path = tmp_path / "w" / "run.safetensors"
    path.parent.mkdir()
    path.write_bytes(b"previous weights")
    child = forker.run("hostile_writers:save_weights_of_a_model", str(path), cwd=tmp_path, fsize=16 * 1024)
    _too_large(child, f"cannot write {path}")
    assert path.read_bytes() == b"previous weights" and temp_names(path) == []


CHECKPOINT = Trial(
    "full disk", "a checkpoint written onto a full disk mid-run",
    does="A `zoo bench run` killed right after its first checkpoint (step 3), started again in a child whose "
         "file-size limit is below a checkpoint's size (so its next checkpoint, at step 6, cannot be written), then "
         "started once more with the disk free.",
    promise="The starved run ends in one `zoo: error:` line naming `last.ckpt` (exit status 2), the step-3 checkpoint "
            "byte for byte as it was, no record, no temporary file beside the checkpoint or in TMPDIR; the next run "
            "resumes from that checkpoint to the uninterrupted run's record.")


@CHECKPOINT
def test_a_checkpoint_written_onto_a_full_disk_keeps_the_previous_one_and_the_run_resumes(tmp_path, forker,
                                                                                           uninterrupted):
    (tmp_path / "tmp").mkdir()
    env = {"TMPDIR": str(tmp_path / "tmp")}
    ckpt = tmp_path / "c" / BENCH / TIER / f"{MODEL}.s0" / "last.ckpt"
    first = forker.zoo(*suite_argv(0), cwd=tmp_path, env=env, checkpoint_every=CHECKPOINT_EVERY, kill_when=ckpt)
    assert first.killed and ckpt.is_file()
    before = ckpt.read_bytes()
    starved = forker.zoo(*suite_argv(0), cwd=tmp_path, env=env, checkpoint_every=CHECKPOINT_EVERY,
                         fsize=len(before) // 2)
    _too_large(starved, f"cannot write {ckpt}")
    assert ckpt.read_bytes() == before and temp_names(ckpt) == []
    assert sorted(p.name for p in ckpt.parent.iterdir()) == ["last.ckpt"] and list((tmp_path / "tmp").iterdir()) == []
    assert not list((tmp_path / "r").rglob("*.json"))
    again = forker.zoo(*suite_argv(0), cwd=tmp_path, env=env, checkpoint_every=CHECKPOINT_EVERY)
    assert again.code == 0, again.err[-3000:]
    expected = {rid: r for rid, r in uninterrupted.records.items() if rid.endswith(".s0")}
    assert_same_runs(read_records(tmp_path), expected)
    assert not (tmp_path / "c").exists() or not list((tmp_path / "c").rglob("*"))


RELEASE = Trial(
    "full disk", "a release exported onto a full disk",
    does="`zoo pretrained export` of seed 1 over a release of seed 0 of the same model, in a child whose file-size "
         "limit is below the weights' size, and one whose limit lets the weights through but not the manifest "
         "(a release folder whose manifest lists many models).",
    promise="One `zoo: error:` line naming the file that did not fit; every file of the previous release (weights, "
            "card, model card, manifest) byte for byte as it was, never new weights beside an old manifest; no "
            "temporary file left.")


def _exportable(tmp_path: Path, uninterrupted) -> Path:
    """The uninterrupted records, marked as runs that beat the baseline (tests/test_pretrained.py's ``exportable``)."""
    folder = tmp_path / "records" / BENCH / TIER
    folder.mkdir(parents=True)
    for seed in (0, 1):
        record = json.loads((uninterrupted.folder / "r" / BENCH / TIER / f"{MODEL}.s{seed}.json").read_text())
        record.update(state="unsolved", solved=False, reason="marked unsolved by the test to be exportable")
        (folder / f"{MODEL}.s{seed}.json").write_text(json.dumps(record))
    return folder


@RELEASE
@pytest.mark.parametrize("fails_at", ["weights", "manifest"])
def test_a_release_exported_onto_a_full_disk_leaves_the_previous_release_whole(tmp_path, forker, uninterrupted,
                                                                               fails_at):
    from zoo.app.cli import main

    records = _exportable(tmp_path, uninterrupted)
    weights, out = uninterrupted.folder / "w", tmp_path / "release"
    export = ["pretrained", "export", "--out", str(out), "--weights_dir", str(weights)]
    assert main([*export[:2], str(records / f"{MODEL}.s0.json"), *export[2:]]) == 0
    weights_size = (out / f"{MODEL}.{BENCH}.safetensors").stat().st_size
    if fails_at == "manifest":  # a release folder of many models: its manifest is larger than one model's weights
        manifest = json.loads((out / "manifest.json").read_text())
        (entry,) = manifest["models"].values()
        manifest["models"].update({f"other_{i}.{BENCH}": entry for i in range(40)})
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
        assert (out / "manifest.json").stat().st_size > 2 * weights_size
    before = _snapshot(out)
    limit = weights_size // 2 if fails_at == "weights" else weights_size + 1024
    child = forker.zoo(*export[:2], str(records / f"{MODEL}.s1.json"), *export[2:], cwd=tmp_path, fsize=limit)
    _too_large(child, f"{MODEL}.{BENCH}.safetensors" if fails_at == "weights" else "manifest.json")
    assert _snapshot(out) == before  # every file as it was, and no temporary file among them


DOWNLOAD = Trial(
    "full disk", "a download onto a full disk",
    does="A pinned Hub file downloaded by `hf_hub_download` (from a local Hub) into a Hub cache that already holds "
         "another file of the repo, and a data file downloaded from a `file://` address into the data cache, each "
         "in a child whose file-size limit is below the file's size.",
    promise="One ZooError naming the file and saying it is too large; the Hub cache keeps no blob, `.incomplete` "
            "file or snapshot link of it and the other file is as it was; the data cache keeps no file and no "
            "`.part` file.")


@DOWNLOAD
def test_a_hub_download_onto_a_full_disk_leaves_nothing_of_it(tmp_path, forker):
    repo, commit = "zoo-hostile/full", "d15c" + "0" * 36
    old, big = b"the file cached before" * 10, bytes(range(256)) * 1200
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    with FakeHub() as hub:
        hub.add(repo, commit, "old.bin", old)
        hub.add(repo, commit, "big.safetensors", big)
        env["HF_ENDPOINT"] = hub.url
        args = lambda name, data: (repo, commit, name, len(data), hashlib.sha256(data).hexdigest())  # noqa: E731
        cached = forker.run("hostile_writers:download_from_hub", *args("old.bin", old), cwd=tmp_path, env=env)
        assert cached.result["ok"], cached.result
        before = _snapshot(tmp_path / "hub")
        child = forker.run("hostile_writers:download_from_hub", *args("big.safetensors", big), cwd=tmp_path, env=env,
                           fsize=len(big) // 3)
    _too_large(child, "big.safetensors")
    after = _snapshot(tmp_path / "hub")
    assert {k: v for k, v in after.items() if "/.locks/" not in f"/{k}"} == \
        {k: v for k, v in before.items() if "/.locks/" not in f"/{k}"}  # only the client's lock files may be new
    assert not [p for p in (tmp_path / "hub").rglob("*") if p.name.endswith(".incomplete") or "big" in p.name]


@DOWNLOAD
def test_a_data_download_onto_a_full_disk_leaves_nothing_in_the_cache(tmp_path, forker):
    text = b"a b c _ d e f \n" * 4000
    source = tmp_path / "site" / "ptb.char.test.txt"
    source.parent.mkdir()
    source.write_bytes(text)
    env = {"ZOO_CACHE_DIR": str(tmp_path / "cache"), "HF_ENDPOINT": "http://127.0.0.1:9"}
    child = forker.run("hostile_writers:fetch_data_file", "ptb/ptb.char.test.txt", len(text),
                       hashlib.sha256(text).hexdigest(), source.as_uri(), cwd=tmp_path, env=env, fsize=len(text) // 4)
    _too_large(child, "could not download ptb/ptb.char.test.txt")
    assert [p for p in (tmp_path / "cache").rglob("*") if p.is_file()] == []
    shutil.rmtree(tmp_path / "site")
