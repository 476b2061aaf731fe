"""Writers for trials to kill or starve in a forked child: the zoo's own write functions, on inputs read from files."""

from __future__ import annotations

import json
from pathlib import Path

from zoo.records import write_record


def write_record_from(source: str, path: str) -> str:
    """``zoo.records.write_record(path, <the JSON in source>)``: a record writer to kill half-way."""
    return str(write_record(path, json.loads(Path(source).read_text())))


def save_weights_of_a_model(path: str, hidden_size: int = 128) -> str:
    """``zoo.app.runner.save_weights`` of an adding-problem tanh RNN: a weights writer to starve of disk."""
    from tasks import AddingProblem
    from zoo.app.runner import save_weights
    from zoo.models.rnn import RNNConfig
    from zoo.module import SequenceModel

    model = SequenceModel(AddingProblem(seq_len=12).task_spec, RNNConfig(hidden_size=hidden_size))
    return json.dumps(save_weights(model, Path(path)))


def download_from_hub(repo: str, revision: str, name: str, size: int, sha256: str) -> str:
    """``zoo.transport.download_hub`` of one file (the endpoint and cache from the environment)."""
    from zoo.transport import FileSpec, download_hub

    return str(download_hub(repo, revision, FileSpec(name, size, sha256)))


def fetch_data_file(name: str, size: int, sha256: str, url: str) -> str:
    """``tasks.datafiles.fetch`` of a data file known (in this process) by its size, sha256 and one address."""
    from tasks import datafiles

    datafiles.FILES[name] = datafiles.DataFile(name, size, sha256, (url,))
    return str(datafiles.fetch(name, offline=False))
