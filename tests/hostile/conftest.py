"""The hostile trials' shared machinery: counting each trial's cases as they run, and the forked children.

Counting: every test item marked with a ``Trial`` (``hostile_trials.py``) is one case of it;
its outcome is counted here as it is reported. ``test_table.py`` (moved to the end of the
session) renders TESTING.md from the counts and compares it with the committed file; with
``ZOO_TRIALS_JSON=FILE`` the counts are also written there when the session ends, which is how
``scripts/testing_table.py`` regenerates the file.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the helpers beside this file, whatever pytest's import mode
pytest.register_assert_rewrite("hostile_suite")

from hostile_children import Forker  # noqa: E402
from hostile_suite import CHECKPOINT_EVERY, read_records, suite_argv  # noqa: E402
from hostile_trials import Trial  # noqa: E402

HERE = Path(__file__).parent
TABLE_TEST = "test_table.py"


class Tally:
    """Per trial: its words, its cases' outcomes; and whether every trial file was collected with nothing deselected."""

    def __init__(self) -> None:
        self.trials: dict[Trial, dict[str, Any]] = {}
        self.of_item: dict[str, Trial] = {}
        self.outcomes: dict[str, str] = {}
        self.files: set[str] = set()
        self.deselected_trial_items = 0
        self.unmarked: list[str] = []  # tests of the trial files that no Trial counts

    def collected(self, items: list[pytest.Item]) -> None:
        for item in items:
            marker = item.get_closest_marker("trial")
            if marker is None:
                if Path(str(item.path)).parent == HERE and Path(str(item.path)).name != TABLE_TEST:
                    self.unmarked.append(item.nodeid)
                continue
            trial = marker.args[0]
            self.of_item[item.nodeid] = trial
            self.files.add(Path(str(item.path)).name)
            self.trials.setdefault(trial, {"order": len(self.trials)})

    def report(self, report: pytest.TestReport) -> None:
        if report.nodeid not in self.of_item:
            return
        before = self.outcomes.get(report.nodeid)
        if report.failed:
            self.outcomes[report.nodeid] = "failed"
        elif report.skipped and before != "failed":
            self.outcomes[report.nodeid] = "skipped"
        elif report.when == "call" and report.passed and before is None:
            self.outcomes[report.nodeid] = "passed"

    def complete(self) -> str | None:
        """None when this session ran every trial file with no trial case deselected; else why not."""
        files = {p.name for p in HERE.glob("test_*.py")} - {TABLE_TEST}
        missing = sorted(files - self.files)
        if missing:
            return f"trial files not collected in this session: {', '.join(missing)}"
        if self.deselected_trial_items:
            return f"{self.deselected_trial_items} trial case(s) deselected"
        unfinished = [n for n in self.of_item if n not in self.outcomes]
        if unfinished:
            return f"{len(unfinished)} trial case(s) have not run yet (the session stopped early?)"
        return None

    def results(self) -> dict[str, Any]:
        rows = []
        for trial, info in self.trials.items():
            outcomes = [self.outcomes.get(n, "not run") for n, t in self.of_item.items() if t == trial]
            rows.append({"family": trial.family, "name": trial.name, "does": trial.does, "promise": trial.promise,
                         "order": info["order"], "cases": len(outcomes),
                         **{k: outcomes.count(k) for k in ("passed", "failed", "skipped")}})
        return {"trials": rows}


TALLY = Tally()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "trial(t): a case of hostile trial t (tests/hostile/hostile_trials.py)")


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """The table's check runs last, after every trial case; the trial cases are counted as collected."""
    last = [i for i in items if Path(str(i.path)).name == TABLE_TEST and Path(str(i.path)).parent == HERE]
    items[:] = [i for i in items if i not in last] + last


def pytest_collection_finish(session: pytest.Session) -> None:
    TALLY.collected(session.items)


def pytest_deselected(items: list[pytest.Item]) -> None:
    TALLY.deselected_trial_items += sum(1 for i in items if i.get_closest_marker("trial") is not None)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    TALLY.report(report)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("ZOO_TRIALS_JSON")
    if target and TALLY.of_item:
        Path(target).write_text(json.dumps({**TALLY.results(), "complete": TALLY.complete()}, indent=2) + "\n")


@pytest.fixture(scope="session")
def tally() -> Tally:
    return TALLY


@pytest.fixture(scope="session")
def forker():
    """One ``forker.py`` for the session: each ``forker.run``/``forker.zoo`` is a fresh forked child of it."""
    f = Forker()
    yield f
    f.close()


# --------------------------------------------------------------------------- shared real runs and checks
@pytest.fixture(scope="session")
def uninterrupted(forker, tmp_path_factory):
    """The trials' suite run without a fault, seeds 0-3 (two pairs timed): what every faulted run must end equal to."""
    from types import SimpleNamespace

    folder = tmp_path_factory.mktemp("uninterrupted")
    first = forker.zoo(*suite_argv(0, 1), cwd=folder, checkpoint_every=CHECKPOINT_EVERY)
    assert first.code == 0, first.err[-3000:]
    rest = forker.zoo(*suite_argv(2, 3), cwd=folder, checkpoint_every=CHECKPOINT_EVERY)
    assert rest.code == 0, rest.err[-3000:]
    return SimpleNamespace(folder=folder, records=read_records(folder), seconds=first.seconds)


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """A local Hub (tests/hub_server.py) as the endpoint, an empty package folder (its manifest set by the test),
    a fresh Hub cache: ``hub.package``, ``hub.cache``."""
    from hub_server import FakeHub
    from zoo import transport

    package = tmp_path / "package"
    package.mkdir()
    monkeypatch.setattr(transport, "PACKAGE_WEIGHTS", package)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    for env in (*transport.OFFLINE_ENVS, "HF_HOME", "HF_TOKEN"):
        monkeypatch.delenv(env, raising=False)
    with FakeHub() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        server.package, server.cache = package, tmp_path / "hub-cache"
        yield server


@pytest.fixture(scope="session")
def opened():
    """The files Python opens while ``opened.watch()`` is on (an audit hook): to show a bait file was never read."""

    class Opens:
        def __init__(self) -> None:
            self.on, self.paths = False, []

        def __call__(self, event: str, args: tuple) -> None:
            if self.on and event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
                self.paths.append(os.fsdecode(args[0]))

        def watch(self) -> "Opens":
            self.on, self.paths = True, []
            return self

        def of(self, path: Path) -> list[str]:
            self.on = False
            target = Path(path).resolve()
            hits = []
            for p in self.paths:
                try:
                    if Path(p).resolve() == target:
                        hits.append(p)
                except (OSError, ValueError):  # a name the file system cannot hold was never opened
                    pass
            return hits

    recorder = Opens()
    sys.addaudithook(recorder)
    return recorder
