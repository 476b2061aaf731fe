"""Hostile weights: safetensors files made to break the loader, served by a Hub whose manifest vouches for them.

The manifest's size and sha256 are those of the hostile file itself (a release that is
malformed, not a download that went wrong), so each file passes the transport's check and
reaches the loader. Every one must be refused with one clear error, and the Hub cache must
keep nothing of it. A file swapped on disk right after its sha256 was taken must never be
the one loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as save_bytes

from hostile_release import COMMIT, GOOD, GOOD_BYTES, NAME, REPO, TASK, card, data_left
from hostile_trials import Trial
from zoo import pretrained
from zoo.errors import ZooError
from zoo.models.rnn import RNNConfig
from zoo.module import SequenceModel

def _header_length(data: bytes) -> int:
    return struct.unpack("<Q", data[:8])[0]


def _with(**changes) -> bytes:
    """The good tensors with some replaced (a value of None removes one)."""
    state = {k: v for k, v in GOOD.items()}
    for key, value in changes.items():
        if value is None:
            state.pop(key)
        else:
            state[key] = value
    return save_bytes(state)


FIRST = next(iter(GOOD))  # a weight matrix: backbone.rnn.weight_ih_l0


def _poisoned(value: float) -> bytes:
    t = GOOD[FIRST].clone()
    t.view(-1)[3] = value
    return _with(**{FIRST: t})


n = _header_length(GOOD_BYTES)
HOSTILE = {
    # (bytes, what the one error must say)
    "header-length-past-the-end": (struct.pack("<Q", len(GOOD_BYTES) * 4) + GOOD_BYTES[8:],
                                   r"is not a readable safetensors file .*invalid header length"),
    "header-length-2^63": (struct.pack("<Q", 1 << 63) + GOOD_BYTES[8:], r"is not a readable safetensors file .*header too large"),
    "header-not-json": (GOOD_BYTES[:8] + b"{" * n + GOOD_BYTES[8 + n:], r"is not a readable safetensors file .*invalid JSON"),
    "header-a-json-list": (struct.pack("<Q", 8) + b"[1,2,3] " + GOOD_BYTES[8 + n:],
                           r"is not a readable safetensors file"),
    "data-cut-short": (GOOD_BYTES[: len(GOOD_BYTES) - 40], r"is not a readable safetensors file"),
    "empty-file": (b"", r"is not a readable safetensors file"),
    "float64-tensors": (save_bytes({k: v.double() for k, v in GOOD.items()}),
                        r"are not gru_1x8.hostile's: backbone.rnn.weight_ih_l0 is float64 in the file, float32 in the model"),
    "float16-tensors": (save_bytes({k: v.half() for k, v in GOOD.items()}), r"is float16 in the file, float32 in the model"),
    "int32-tensor": (_with(**{"head.bias": torch.ones(1, dtype=torch.int32)}), r"head.bias is int32 in the file, float32"),
    "wrong-shape": (_with(**{"head.weight": torch.zeros(1, 16)}), r"do not fit gru_1x8.hostile's architecture .*head.weight is "
                                                                   r"1x16 in the file, 1x8 in the model"),
    "another-architecture": (save_bytes({k: v.contiguous() for k, v in SequenceModel(
        TASK, RNNConfig(cell="lstm", hidden_size=8)).state_dict().items()}), r"do not fit gru_1x8.hostile's architecture"),
    "extra-tensor": (_with(**{"backdoor.weight": torch.zeros(2)}), r"do not fit .*unexpected backdoor.weight"),
    "missing-tensor": (_with(**{"head.bias": None}), r"do not fit .*missing head.bias"),
    "nan-value": (_poisoned(float("nan")), r"hold NaN or infinite values in backbone.rnn.weight_ih_l0"),
    "inf-value": (_poisoned(float("inf")), r"hold NaN or infinite values in backbone.rnn.weight_ih_l0"),
    "minus-inf-value": (_poisoned(float("-inf")), r"hold NaN or infinite values"),
}


def publish(hub, entries: dict[str, dict], files: dict[str, bytes]) -> None:
    (hub.package / "manifest.json").write_text(json.dumps({"version": 1, "models": entries}))
    for name, data in files.items():
        hub.add(REPO, COMMIT, name, data)


def one_line(err: ZooError) -> str:
    text = str(err)
    assert "\n" not in text, text
    return text


MALFORMED = Trial(
    "weights", "malformed safetensors from the Hub",
    does="A release whose manifest vouches (size, sha256) for a file with a header length past the end or of 2^63, "
         "a header that is not JSON, data cut short, an empty file, float64/float16/int32 tensors, a wrong shape, "
         "another architecture, an extra or a missing tensor, NaN or ±inf in a weight; loaded by name through the "
         "Hub client from a local Hub.",
    promise="`zoo.pretrained.load` refuses each with one error naming the file and what is wrong with it; no model is "
            "returned, no tensor is converted to another dtype, and the Hub cache keeps no blob or snapshot of it.")


@MALFORMED
@pytest.mark.parametrize("kind", list(HOSTILE))
def test_a_malformed_release_is_refused_and_leaves_nothing_in_the_cache(hub, kind):
    data, message = HOSTILE[kind]
    publish(hub, {NAME: card(data)}, {"w.safetensors": data})
    with pytest.raises(ZooError) as err:
        pretrained.load(NAME)
    assert re.search(message, one_line(err.value)), err.value
    assert "w.safetensors" in str(err.value) and "removed it from the Hub cache" in str(err.value)
    assert data_left(hub.cache) == []
    assert hub.file_requests  # it came through the Hub client: the loader refused it, not the transport


@MALFORMED
def test_the_good_release_loads_from_the_same_hub(hub):
    """The control: the same route with the good file loads it, exactly."""
    publish(hub, {NAME: card(GOOD_BYTES)}, {"w.safetensors": GOOD_BYTES})
    loaded = pretrained.load(NAME).model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in GOOD.items())
    assert len(data_left(hub.cache)) == 2  # its snapshot link and its blob


SWAPPED = Trial(
    "weights", "file swapped after its sha256 was checked",
    does="The published file passes its size and sha256 check, and at that very moment (as the digest is returned) "
         "another file of the same shapes is renamed over it: in the package folder, and over the blob in the Hub cache.",
    promise="What is loaded is what was hashed: the loader reads the file once and loads those bytes, so the model "
            "gets the published weights, never the swapped ones.")


@pytest.fixture
def swap_after_digest(monkeypatch):
    """Arm a swap: when a sha256 digest equal to ``digest`` is returned, rename ``replacement`` onto ``target``."""
    real = hashlib.sha256
    armed: dict = {}

    class Racing:
        def __init__(self, *args, **kwargs):
            self._h = real(*args, **kwargs)

        def update(self, data):
            self._h.update(data)

        def digest(self):
            return self._h.digest()

        def hexdigest(self):
            value = self._h.hexdigest()
            if armed and value == armed["digest"] and not armed.get("done"):
                os.replace(armed["replacement"], armed["target"])
                armed["done"] = True
            return value

    def arm(digest: str, replacement: Path, target: Path) -> dict:
        armed.update(digest=digest, replacement=replacement, target=target)
        monkeypatch.setattr(hashlib, "sha256", Racing)
        return armed

    return arm


ZEROS = save_bytes({k: torch.zeros_like(v) for k, v in GOOD.items()})  # the same shapes: a silent swap if re-read


@SWAPPED
@pytest.mark.parametrize("where", ["package", "hub-cache"])
def test_a_file_swapped_after_its_check_is_never_the_one_loaded(hub, tmp_path, swap_after_digest, where):
    entry = card(GOOD_BYTES, "w.safetensors")
    if where == "package":
        entry["hub"] = None
        target = hub.package / "w.safetensors"
        target.write_bytes(GOOD_BYTES)
        publish(hub, {NAME: entry}, {})
    else:
        publish(hub, {NAME: entry}, {"w.safetensors": GOOD_BYTES})
        pretrained.load(NAME)  # now in the Hub cache: the next load reads the cached blob
        target = next(p for p in hub.cache.rglob("w.safetensors")).resolve()
    replacement = tmp_path / "zeros.safetensors"
    replacement.write_bytes(ZEROS)
    armed = swap_after_digest(entry["file"]["sha256"], replacement, target)
    loaded = pretrained.load(NAME).model.state_dict()
    assert armed.get("done"), "the swap never happened: the check did not hash the file"
    assert target.read_bytes() == ZEROS  # the file on disk is now the other one ...
    assert all(torch.equal(loaded[k], v) for k, v in GOOD.items())  # ... and the model has the published weights
