"""Pretrained models: the manifest, loading a model ready to use, exporting a run as a release, verifying.

    zoo pretrained list "lstm*"
    zoo pretrained info lstm_1x128.smnist
    zoo pretrained download lstm_1x128.smnist

Exporting a run as a release and verifying one need the task's data: ``zoo.app.release``.

Every entry of the manifest (``zoo/pretrained_weights/manifest.json``) is a model card
in data: task, metrics with the record they came from, recipe, parameter count, file
size and sha256, the training data's licence, and whatever the model needs to be used
correctly (the vocabulary of a language model, the normalization and pixel order of
MNIST). Weights are safetensors; nothing is unpickled.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError, check_choice
from zoo import transport
from zoo.transport import FileSpec, fetch


MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1



def manifest(path: Path | None = None) -> dict[str, dict[str, Any]]:
    """Every pretrained entry by name (``arch.tag``): the package's manifest unless ``path`` is given."""
    path = path or transport.PACKAGE_WEIGHTS / MANIFEST_NAME
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
        raise ZooError(f"manifest {path} is not valid JSON (truncated or corrupt?): {err}") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise ZooError(f"{path} is not an rnn-zoo manifest (no \"models\" mapping)")
    if data.get("version") != MANIFEST_VERSION:
        raise ZooError(f"{path} has manifest version {data.get('version')!r}; this rnn-zoo reads {MANIFEST_VERSION}")
    return data["models"]


def entry(name: str) -> dict[str, Any]:
    models = manifest()
    return models[check_choice("pretrained model", name, sorted(models))]


def file_spec(info: dict[str, Any]) -> FileSpec:
    return FileSpec(info["name"], info["bytes"], info["sha256"])


@dataclass
class Pretrained:
    """A model ready for evaluation and what it needs to be fed correctly."""

    name: str
    model: Any  # SequenceModel, in eval mode
    card: dict[str, Any]
    vocab: list[str] | None = None
    preprocessing: dict[str, Any] = field(default_factory=dict)

    def encode(self, tokens: list[str]) -> torch.Tensor:
        """Token ids (1, T) for a language model; unknown words map to <unk> where the vocabulary has one."""
        if self.vocab is None:
            raise ZooError(f"{self.name} is not a language model; it takes {self.card['task']['input_kind']} inputs")
        index = {t: i for i, t in enumerate(self.vocab)}
        unk = index.get("<unk>")
        ids = []
        for token in tokens:
            if token not in index and unk is None:
                raise ZooError(f"token {token!r} is not in {self.name}'s vocabulary, which has no <unk>")
            ids.append(index.get(token, unk))
        return torch.tensor([ids], dtype=torch.long)

    def prepare_images(self, images: Any) -> torch.Tensor:
        """uint8 images (N, H, W) or (N, H*W), 0..255 -> what the model reads: (N, T, I).

        Only the card says how (its ``preprocessing``, written from the task's release
        facts): the same arithmetic as the DataModule the model was trained on. Pixels are
        divided by ``divide_by``, normalized by ``mean`` and ``std``, put in ``pixel_order``
        (input position i reads raster pixel ``pixel_order[i]``; None: raster order) and
        read as ``steps`` x ``inputs``.
        """
        p = self.preprocessing
        if "mean" not in p:
            raise ZooError(f"{self.name} does not read images; its task is {self.card['task']['name']!r}")
        missing = [k for k in ("divide_by", "std", "pixel_order", "steps", "inputs") if k not in p]
        if missing:
            raise ZooError(f"{self.name}'s card does not say how to prepare images (its preprocessing lacks "
                           f"{', '.join(missing)}); re-export it with this rnn-zoo")
        pixels = p["steps"] * p["inputs"]
        size = "x".join(map(str, p["image_size"])) + " = " if p.get("image_size") else ""
        x = torch.tensor(images, dtype=torch.float32).reshape(len(images), -1)  # a copy: the input may be read-only
        if x.shape[1] != pixels:
            raise ZooError(f"{self.name} reads {size}{pixels} pixels per image, got {x.shape[1]}")
        x = x.div(p["divide_by"]).sub(p["mean"]).div(p["std"])
        if p["pixel_order"] is not None:
            order = torch.as_tensor(p["pixel_order"], dtype=torch.long)
            if order.shape != (pixels,):
                raise ZooError(f"{self.name}'s card has a pixel order of {order.numel()} positions for {pixels} pixels")
            x = x[:, order]
        return x.reshape(len(x), p["steps"], p["inputs"])  # (N, T, I)


def build_model(card: dict[str, Any], model: dict[str, Any] | None = None):
    """The card's network, as a benchmark run builds it.

    ``model`` is a run config's model section (``backbone``, ``optim``, ``module``) to build
    instead of the card's own, e.g. the card's with a few settings changed
    (``zoo.create_model``); by default there are no optimizer settings: it is for evaluation.
    """
    from zoo.module import SequenceModel

    return SequenceModel.from_config(model if model is not None else {**card["model"], "optim": {}}, card["task"])


def describe_architecture(card: dict[str, Any]) -> str:
    """A card's network in words: ``lstm 1x128``, ``gru 2x64 bidirectional``."""
    b = card["model"]["backbone"]
    return f"{b['cell']} {b['num_layers']}x{b['hidden_size']}" + (" bidirectional" if b.get("bidirectional") else "")


def file_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors header (only the header is read); an unreadable file is an error."""
    from safetensors import SafetensorError, safe_open

    if not path.is_file():
        raise ZooError(f"weights file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {key: tuple(f.get_slice(key).get_shape()) for key in f.keys()}
    except (SafetensorError, OSError, ValueError) as err:
        raise ZooError(f"weights file {path} is not a readable safetensors file (truncated or corrupt?): "
                       f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None


def architecture_mismatch(model, shapes: dict[str, tuple[int, ...]]) -> str | None:
    """What keeps a file's tensors from fitting ``model``, in words, or None when they fit."""
    state = model.state_dict()
    expected = {k: tuple(v.shape) for k, v in state.items()}
    pointers = {k: v.data_ptr() for k, v in state.items()}
    in_file = {pointers[k] for k in shapes if k in pointers}
    problems = [f"{k} is {'x'.join(map(str, shapes[k])) or 'a scalar'} in the file, "
                f"{'x'.join(map(str, expected[k])) or 'a scalar'} in the model"
                for k in expected if k in shapes and shapes[k] != expected[k]]  # in the model's order
    missing = sorted(k for k in expected if k not in shapes and pointers[k] not in in_file)  # tied tensors once
    unexpected = sorted(k for k in shapes if k not in expected)
    if missing:
        problems.append(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
    if unexpected:
        problems.append(f"unexpected {', '.join(unexpected[:4])}{' ...' if len(unexpected) > 4 else ''}")
    if not problems:
        return None
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return "; ".join(problems[:3]) + more


def read_tensors(data: bytes, where: str) -> dict[str, torch.Tensor]:
    """The tensors of safetensors bytes; a malformed file (header past the end, not JSON, ...) is one error."""
    from safetensors import SafetensorError
    from safetensors.torch import load as load_bytes

    try:
        return load_bytes(bytes(data))
    except (SafetensorError, ValueError, OSError) as err:
        raise ZooError(f"weights file {where} is not a readable safetensors file (truncated or corrupt?): "
                       f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def load_weights(model, source: Path | bytes, name: str, architecture: str = "", *, where: str | None = None) -> None:
    """safetensors (a file, or bytes already checked by sha256) into ``model``, every tensor accounted for.

    Refused, each with one error and ``model`` left as it was: another architecture's file (names,
    shapes), tensors of another dtype (a float64 or float16 file would be converted silently), and
    NaN or infinite values (the weights of a diverged run). Bytes are loaded as they are, so what is
    used is what was hashed; a path is read once.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, where = bytes(source), where or "(bytes)"
    else:
        path = Path(source)
        if not path.is_file():
            raise ZooError(f"weights file {path} does not exist")
        data, where = path.read_bytes(), where or str(path)
    tensors = read_tensors(data, where)
    mismatch = architecture_mismatch(model, {k: tuple(v.shape) for k, v in tensors.items()})
    if mismatch:
        raise ZooError(f"weights {where} do not fit {name}'s architecture{f' ({architecture})' if architecture else ''}: "
                       f"{mismatch}")
    state = model.state_dict()
    dtypes = [f"{k} is {_dtype(tensors[k])} in the file, {_dtype(state[k])} in the model" for k in state
              if k in tensors and tensors[k].dtype != state[k].dtype]  # in the model's order
    if dtypes:
        more = f" (and {len(dtypes) - 3} more)" if len(dtypes) > 3 else ""
        raise ZooError(f"weights {where} are not {name}'s: {'; '.join(dtypes[:3])}{more}; a release stores the "
                       "model's own dtypes")
    nonfinite = sorted(k for k, v in tensors.items() if v.is_floating_point() and not bool(torch.isfinite(v).all()))
    if nonfinite:
        raise ZooError(f"weights {where} hold NaN or infinite values in {', '.join(nonfinite[:4])}"
                       f"{' ...' if len(nonfinite) > 4 else ''}: the weights of a run that diverged; not loaded")
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    loaded = {state[k].data_ptr() for k in tensors}
    missing = [k for k in missing if state[k].data_ptr() not in loaded]  # a tied tensor is in the file once
    if missing or unexpected:
        raise ZooError(f"weights {where} do not fit {name}'s architecture: missing {sorted(missing)}, "
                       f"unexpected {sorted(unexpected)}")


def load(name: str, *, path: str | os.PathLike | None = None, offline: bool | None = None,
         model: dict[str, Any] | None = None) -> Pretrained:
    """The pretrained model ``name``, from the first source that has it (``zoo.transport``), in eval mode.

    ``model``: the model section to build (see ``build_model``) before the weights, checked
    by sha256, are loaded into it; its tensors must have the card's shapes.
    """
    card = entry(name)
    try:
        weights = transport.fetch_checked(file_spec(card["file"]), path=path, hub=card.get("hub"), offline=offline)
    except ZooError as err:
        # A readable safetensors file of another network is worth naming as such, not just "another file".
        if path is not None and Path(path).is_file():
            try:
                mismatch = architecture_mismatch(build_model(card), file_shapes(Path(path)))
            except ZooError:
                mismatch = None
            if mismatch:
                raise ZooError(f"weights {path} do not fit {name}'s architecture ({describe_architecture(card)}): "
                               f"{mismatch}") from None
        raise err from None
    network = build_model(card, model)
    try:  # the bytes that were hashed, not the path again: a file swapped since its check is never loaded
        load_weights(network, weights.data, name, describe_architecture(card), where=str(weights.path))
    except ZooError as err:
        raise transport.discard(weights, err) from None
    network.eval()
    vocab = None
    if "vocab" in card.get("extras", {}):
        checked = transport.fetch_checked(file_spec(card["extras"]["vocab"]), hub=card.get("hub"), offline=offline)
        vocab_path = checked.path
        try:
            try:
                vocab = json.loads(checked.data.decode("utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
                raise ZooError(f"vocabulary {vocab_path} of {name} is not valid JSON: {err}") from None
            if not (isinstance(vocab, list) and all(isinstance(t, str) for t in vocab)):
                raise ZooError(f"vocabulary {vocab_path} of {name} is not a JSON list of tokens")
        except ZooError as err:
            raise transport.discard(checked, err) from None
        if len(vocab) != card["task"]["input_size"]:
            raise ZooError(f"{name}'s vocabulary has {len(vocab)} tokens but the model reads {card['task']['input_size']}")
    return Pretrained(name, network, card, vocab, dict(card.get("preprocessing", {})))


def download(name: str) -> list[Path]:
    """Fetch every file of ``name`` into the cache (checked); returns their paths."""
    card = entry(name)
    files = [card["file"], *card.get("extras", {}).values()]
    return [fetch(file_spec(f), hub=card.get("hub")) for f in files]
