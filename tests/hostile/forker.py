"""A process that has imported the zoo once and forks a fresh child for each task a trial gives it.

Why: a hostile trial needs real processes (killed with SIGKILL, or held to a file-size
limit by the kernel), and twenty of them. Starting Python, torch and Lightning costs
seconds each time; a fork of a process that has already imported them costs milliseconds.
Each child is a real process running the real code (``zoo.app.cli.main`` for a
``zoo bench run``), with its own limits and its own fate; nothing in it is mocked.

Protocol: one JSON request a line on stdin, one JSON answer a line on stdout.

request  {"call": "module:function", "args": [...], "cwd": DIR, "env": {...},
          "out": FILE, "err": FILE, "result": FILE,
          "fsize": BYTES | null,             # RLIMIT_FSIZE in the child, SIGXFSZ ignored (EFBIG, not death)
          "kill_after": SECONDS | null,      # SIGKILL the child this long after it started ...
          "kill_when": PATTERN | null,       # ... or once a file matches this glob (polled every 2 ms)
          "checkpoint_every": STEPS | null}  # zoo.train's checkpoint cadence in the child
answer   {"status": "exited" | "killed", "code": INT, "seconds": FLOAT}

The child writes ``result`` as JSON: {"ok": true, "value": repr} or {"ok": false, "type", "message"}.
"""

from __future__ import annotations

import os

os.environ["OMP_NUM_THREADS"] = "1"  # before torch: the children share two cores with the test

import glob
import importlib
import json
import resource
import signal
import sys
import tempfile
import time
import traceback
from typing import Any

import zoo  # noqa: F401  (first, as every entry point: flushes denormals)
import torch

torch.set_num_threads(1)
import lightning  # noqa: F401,E402  (imported here once, so that each child starts warm)
import safetensors.torch  # noqa: F401,E402

import tasks  # noqa: F401,E402
import zoo.app.cli  # noqa: F401,E402
import zoo.app.commands  # noqa: F401,E402
import zoo.app.release  # noqa: F401,E402
import zoo.app.runner  # noqa: F401,E402
import zoo.train  # noqa: F401,E402


def _resolve(call: str) -> Any:
    module, _, name = call.partition(":")
    return getattr(importlib.import_module(module), name)


def _child(request: dict[str, Any]) -> None:
    """Runs in the forked child: set its limits, run the call, write its result, never return."""
    code = 1
    try:
        for fd, key in ((1, "out"), (2, "err")):
            target = os.open(request[key], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(target, fd)
            os.close(target)
        sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
        sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
        os.chdir(request["cwd"])
        os.environ.update(request.get("env") or {})
        tempfile.tempdir = None  # the child's own TMPDIR, not the one the forker may have read
        if request.get("checkpoint_every"):
            zoo.train.CHECKPOINT_EVERY_N_STEPS = int(request["checkpoint_every"])
        result: dict[str, Any]
        # The result file is opened before the limit, so that writing it is not what the limit stops.
        with open(request["result"], "w") as out:
            if request.get("fsize") is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
                soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
                resource.setrlimit(resource.RLIMIT_FSIZE, (int(request["fsize"]), hard))
            try:
                value = _resolve(request["call"])(*request.get("args", []))
                result, code = {"ok": True, "value": repr(value)}, 0
                if isinstance(value, int) and not isinstance(value, bool):
                    code = value  # a command's exit status
            except BaseException as err:  # noqa: BLE001 - every outcome is reported to the trial
                result = {"ok": False, "type": type(err).__name__, "message": str(err),
                          "traceback": traceback.format_exc()}
            if request.get("fsize") is not None:
                resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))  # lifted again to report the outcome
            out.write(json.dumps(result))
        sys.stdout.flush(), sys.stderr.flush()
    finally:
        os._exit(code)


def _serve_one(request: dict[str, Any]) -> dict[str, Any]:
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(request)
    killed = False
    kill_after, kill_when = request.get("kill_after"), request.get("kill_when")
    if kill_after is not None or kill_when is not None:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            late = kill_after is not None and time.monotonic() - start >= kill_after
            if late or (kill_when is not None and glob.glob(kill_when)):
                os.kill(pid, signal.SIGKILL)
                killed = True
                _, status = os.waitpid(pid, 0)
                break
            time.sleep(0.002)
    else:
        _, status = os.waitpid(pid, 0)
    killed = killed and os.WIFSIGNALED(status)
    code = os.waitstatus_to_exitcode(status)
    return {"status": "killed" if killed else "exited", "code": code, "seconds": time.monotonic() - start}


def main() -> None:
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(_serve_one(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
