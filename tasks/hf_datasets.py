"""The Hugging Face Hub route: rebuild an original data file from a Hub dataset, byte for byte.

Hub datasets store rows (one per line, in parquet), not the original files. Each
source here says how its rows turn back into the file's exact bytes; the result is
checked against the file's sha256 (``tasks.datafiles``) before it enters the cache,
so a Hub dataset that has drifted from the original is an error, not a silent change
in every number we publish. ``datasets`` caches the download itself.

Each source is pinned to a full commit of its Hub repository, as the pretrained weights
are (``zoo.transport``), and ``load_dataset`` is given it as ``revision``: a branch can move
under a published number, a commit cannot. A source with no pinned commit is not read from
the Hub at all (the error says so); a local copy under ``ZOO_HUB_ROOT`` stands for the
pinned commit (``datasets`` ignores the revision of a local folder, and the sha256 check
still applies).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tasks.datafiles import add_rebuilder, cache_dir, spec, write_checked
from zoo.errors import ZooError

ENV_HUB_ROOT = "ZOO_HUB_ROOT"  # a folder holding Hub datasets by repo id, used instead of the Hub (mirrors, tests)
COMMIT = re.compile(r"[0-9a-f]{40}")  # a full commit hash, as zoo.transport pins weights


@dataclass(frozen=True)
class HubText:
    """Rows ``column`` of ``splits`` of Hub dataset ``repo`` (config ``config``) at commit ``revision``,
    joined back into one file. ``revision`` None: not pinned yet, so never read from the Hub."""

    repo: str
    config: str | None
    splits: tuple[str, ...]
    column: str
    rebuild: Callable[[list[str]], str]
    revision: str | None = None

    def __post_init__(self) -> None:
        if self.revision is not None and not (isinstance(self.revision, str) and COMMIT.fullmatch(self.revision)):
            raise ZooError(f"Hub dataset {self.repo!r}: revision {self.revision!r} is not a full 40-character "
                           "commit hash; a Hub source is pinned to one")


def _ptb_lines(rows: list[str]) -> str:
    # Mikolov's files: each sentence between a leading space and " \n"; the Hub strips both.
    return "".join(f" {row} \n" for row in rows)


def _wikitext_lines(rows: list[str]) -> str:
    # Content rows keep their " \n"; blank lines (" \n" in the file) come back as "".
    return "".join(row if row else " \n" for row in rows)


def _concatenate(rows: list[str]) -> str:
    return "".join(rows)


# The commits these sources are pinned to (HubText.revision) are yet to be read from the Hub by someone online
# (huggingface_hub.HfApi().dataset_info(repo).sha, then checked by rebuilding each file); until then the route
# refuses them and the original files (a data folder, their download addresses) are the only source.
HUB_TEXT: dict[str, HubText] = {
    **{
        f"ptb/ptb.{split}.txt": HubText("ptb_text_only", "penn_treebank", (hub_split,), "sentence", _ptb_lines)
        for split, hub_split in (("train", "train"), ("valid", "validation"), ("test", "test"))
    },
    **{
        f"wikitext-2/wiki.{split}.tokens": HubText("Salesforce/wikitext", "wikitext-2-v1", (hub_split,), "text", _wikitext_lines)
        for split, hub_split in (("train", "train"), ("valid", "validation"), ("test", "test"))
    },
    # One file, which the Hub dataset splits 90/5/5 by characters: the splits concatenated are the file.
    "tinyshakespeare/input.txt": HubText("karpathy/tiny_shakespeare", None, ("train", "validation", "test"), "text", _concatenate),
}


def hub_path(repo: str) -> str:
    """Where ``load_dataset`` looks for ``repo``: the Hub, or a local copy under ``ZOO_HUB_ROOT``."""
    root = os.environ.get(ENV_HUB_ROOT)
    return str(Path(root) / repo) if root else repo


def pinned_revision(source: HubText, name: str) -> str | None:
    """The commit ``load_dataset`` is given for ``source``; reading an unpinned source from the Hub is an error."""
    if source.revision is None and not os.environ.get(ENV_HUB_ROOT):
        raise ZooError(f"Hub dataset {source.repo!r} (for {name}) has no pinned commit in tasks/hf_datasets.py "
                       "(HUB_TEXT), so it is not read: an unpinned branch can change under a published number. "
                       f"Give the original file instead (a data folder), or pin the dataset's commit there")
    return source.revision


def fetch_text_from_hub(name: str) -> Path:
    """Rebuild data file ``name`` from its Hub dataset into the cache, checked; return its path."""
    if name not in HUB_TEXT:
        raise ZooError(f"data file {name!r} has no Hub source; files with one: {', '.join(HUB_TEXT)}")
    source = HUB_TEXT[name]
    try:
        import datasets
    except ImportError as err:  # pragma: no cover - datasets is a dependency
        raise ZooError("the Hub route needs the 'datasets' package") from err
    revision = pinned_revision(source, name)
    rows: list[str] = []
    try:
        for split in source.splits:
            rows += datasets.load_dataset(hub_path(source.repo), source.config, split=split,
                                          revision=revision)[source.column]
    except Exception as err:  # noqa: BLE001 - any failure of the Hub is one error naming the dataset
        at = f"@{revision[:12]}" if revision else ""
        raise ZooError(f"could not load Hub dataset {source.repo!r}{at} (config {source.config!r}, splits "
                       f"{', '.join(source.splits)}) for {name}: {err}") from err
    return write_checked(source.rebuild(rows).encode("utf-8"), spec(name), cache_dir() / name)


# datafiles.fetch falls back on the Hub for the files HUB_TEXT knows (read at each call, so it may be changed).
add_rebuilder("the Hub route", lambda name: name in HUB_TEXT, lambda name: fetch_text_from_hub(name))
