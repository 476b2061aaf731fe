"""The trials' side of ``forker.py``: start it once, then run calls in fresh forked children of it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FORKER = Path(__file__).with_name("forker.py")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Child:
    """What became of one child: killed or exited (with its code), its output, and the call's result."""

    status: str
    code: int
    seconds: float
    out: str
    err: str
    result: dict[str, Any] | None  # None when it was killed before it could say

    @property
    def killed(self) -> bool:
        return self.status == "killed"


class Forker:
    """A running ``forker.py``; ``run`` forks one child for a call and waits for its end."""

    def __init__(self) -> None:
        env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        self.proc = subprocess.Popen([sys.executable, str(FORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env, cwd=ROOT)
        ready = self.proc.stdout.readline()
        if not ready:
            raise RuntimeError("tests/hostile/forker.py did not start")
        self._count = 0

    def run(self, call: str, *args: Any, cwd: Path, env: dict[str, str] | None = None, fsize: int | None = None,
            kill_after: float | None = None, kill_when: Path | None = None,
            checkpoint_every: int | None = None) -> Child:
        self._count += 1
        logs = Path(cwd) / f".child{self._count}"
        request = {"call": call, "args": list(args), "cwd": str(cwd), "env": env or {},
                   "out": f"{logs}.out", "err": f"{logs}.err", "result": f"{logs}.json", "fsize": fsize,
                   "kill_after": kill_after, "kill_when": None if kill_when is None else str(kill_when),
                   "checkpoint_every": checkpoint_every}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = json.loads(self.proc.stdout.readline())
        texts = []
        for suffix in (".out", ".err", ".json"):
            path = Path(f"{logs}{suffix}")
            texts.append(path.read_text() if path.exists() else "")
            path.unlink(missing_ok=True)
        result = json.loads(texts[2]) if texts[2] else None
        return Child(answer["status"], answer["code"], answer["seconds"], texts[0], texts[1], result)

    def zoo(self, *argv: str, cwd: Path, **options: Any) -> Child:
        """``zoo ARGV`` (the command's own ``main``) in a fresh child."""
        return self.run("zoo.app.cli:main", [str(a) for a in argv], cwd=cwd, **options)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
