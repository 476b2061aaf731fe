"""What the site tests share: boards made from a committed record (no training), and reading a built site."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from zoo.app.site.synthetic import big_board as synthetic_big_board
from zoo.app.site.synthetic import variant  # noqa: F401 - the site tests' way to make records
from zoo.records import outcome, read_record, record_path, write_record

ROOT = Path(__file__).resolve().parent.parent
COMMITTED = ROOT / "leaderboards"
# A committed record of the current schema, with learning curves, lengths and a gradient profile.
TEMPLATE = COMMITTED / "records" / "adding_t100" / "cpu" / "gru_1x128.s0.json"


def template() -> dict:
    if not TEMPLATE.is_file():
        pytest.skip(f"no committed record at {TEMPLATE}")
    return read_record(TEMPLATE)


def write_records(root: Path, records: list[dict]) -> Path:
    for r in records:
        write_record(record_path(root, r["benchmark"], r["tier"], r["model"], r["seed"]), r)
    return root


def small_board() -> list[dict]:
    """Three models on adding_t100/cpu: one solved twice, one with a failed and a diverged seed, one all diverged."""
    base = template()
    return [variant(base, "alpha", 0, 0.004, params=1000, cell="gru"),
            variant(base, "alpha", 1, 0.006, params=1000, cell="gru"),
            variant(base, "beta", 0, 0.02, params=5000, cell="lstm"),
            variant(base, "beta", 1, 0.1666, params=5000, cell="lstm"),
            variant(base, "beta", 2, None, params=5000, cell="lstm"),
            variant(base, "gamma", 0, None, params=20000, cell="rnn")]


def smnist_board() -> list[dict]:
    """Two models on smnist/cpu (accuracy, higher is better), a board with published numbers (its anchors)."""
    out = []
    for model, accuracy, params in (("alpha", 0.975, 1000), ("beta", 0.6, 3000)):
        r = variant(template(), model, 0, 0.01, benchmark="smnist", tier="cpu", params=params)
        r["task"] = {**r["task"], "target_metric": "accuracy", "target_mode": "max", "target": 0.98,
                     "baselines": {"accuracy": 0.1135}}
        r["config"]["data"] = {"class": "SequentialMNIST", "args": {"variant": "pixel", "permuted": False}}
        r["metrics"]["test"] = {"accuracy": accuracy, "loss": 0.1}
        r.update(outcome(r["task"], r["metrics"]["test"], False))
        out.append(r)
    return out


def big_board(n: int, tier: str = "big") -> list[dict]:
    """``n`` one-seed models made from the committed template (``zoo.app.site.synthetic.big_board``)."""
    return synthetic_big_board(template(), n, tier)


class Links(HTMLParser):
    """Every src and href in a page, and its embedded JSON scripts by id."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: dict[str, str] = {}
        self._script: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.urls += [v for k, v in attrs.items() if k in ("src", "href") and v is not None]
        if tag == "script" and attrs.get("type") == "application/json":
            self._script = attrs.get("id")

    def handle_data(self, data):
        if self._script:
            self.scripts[self._script] = self.scripts.get(self._script, "") + data

    def handle_endtag(self, tag):
        if tag == "script":
            self._script = None


def parse(path: Path) -> Links:
    links = Links()
    links.feed(path.read_text(encoding="utf-8"))
    return links


def board_data(page: Path) -> dict:
    return json.loads(parse(page).scripts["board-data"])


OTHER_HOST = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|//)", re.I)  # a scheme (http:, https:, file:...) or //host


def external_urls(links: Links) -> list[str]:
    """The src/href values that would make the browser leave the site: anything but a relative path or data:."""
    return [u for u in links.urls if OTHER_HOST.match(u) and not u.startswith("data:")]
