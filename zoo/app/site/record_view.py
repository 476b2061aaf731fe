"""A run record as its page shows it: what ran (config, seed, versions, device, commit, data), what came of it, and
the one command that runs it again.

Every value is the record's own, shown in full precision (a learning rate of 0.001 is
``0.001``, not a rounded 0.001); only the long per-step lists are left to the charts.
"""

from __future__ import annotations

import json
from typing import Any

from zoo.records import record_path, test_metric

RECORDS_ROOT = "leaderboards/records"  # where the committed records sit, relative to a checkout's root
CHARTED = {"final_norms_l0", "curves"}  # drawn, not listed


def value_text(value: Any) -> str:
    """A config value as a reader types it: strings bare, everything else as JSON (true, null, 0.001)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``{"a": {"b": 1}}`` as ``[("a.b", "1")]``, in the mapping's own order; empty mappings as ``{}``."""
    if not isinstance(obj, dict) or not obj:
        return [(prefix or "value", value_text(obj))]
    out = []
    for key, value in obj.items():
        if key in CHARTED:
            continue
        name = f"{prefix}.{key}" if prefix else str(key)
        out += flatten(value, name) if isinstance(value, dict) and value else [(name, value_text(value))]
    return out


def reproduce_command(record: dict[str, Any]) -> str:
    path = record_path(RECORDS_ROOT, record["benchmark"], record["tier"], record["model"], record["seed"])
    return f"zoo reproduce {path.as_posix()}"


def record_view(record: dict[str, Any], released: dict[str, Any] | None) -> dict[str, Any]:
    """The sections of a record's page, each a list of (name, value) rows; ``released`` is its manifest entry."""
    config, env = record["config"], record.get("environment") or {}
    metric, mode = test_metric(record)
    test_value = (record["metrics"].get("test") or {}).get(metric)
    packages = {"python": env.get("python"), **(env.get("packages") or {})}
    device = {k: env.get(k) for k in ("device", "device_name", "cpu", "cpu_threads", "cuda", "cudnn",
                                      "flush_denormal", "own_kernels", "platform") if k in env}
    device.update({f"deterministic.{k}": v for k, v in (env.get("deterministic") or {}).items()})
    run = {k: record.get(k) for k in ("state", "reason", "diverged_reason", "steps", "epochs", "seconds",
                                      "stopped_by", "created", "longest_solved", "params")}
    if record.get("upgraded_from") is not None:
        run["schema"] = f"version {record['upgraded_from']}, read as {record['schema_version']} (state derived)"
    lengths = [(t, values) for t, values in sorted((record.get("lengths") or {}).items(), key=lambda kv: int(kv[0]))]
    sections = [
        ("Run", flatten(run)),
        ("Test and validation metrics", flatten({"test": record["metrics"].get("test"),
                                                 "val": record["metrics"].get("val"),
                                                 "best": record["metrics"].get("best")})),
        ("Model", flatten(config["model"])),
        ("Task", flatten({"data": config["data"], **{f"task.{k}": v for k, v in record["task"].items()}})),
        ("Training", flatten({**config["trainer"], **{k: config.get(k) for k in
                                                      ("stop_at_target", "lengths", "diagnostics_every_n_steps",
                                                       "tolerance") if k in config}})),
        ("Data checksums", flatten(record.get("data") or {})),
        ("Versions", flatten(packages)),
        ("Device", flatten(device)),
        ("Commit", flatten(env.get("git") or {"commit": None})),
        ("Diagnostics", flatten({"convergence": record.get("convergence"), "stability": record.get("stability"),
                                 "gradients": record.get("gradients"),
                                 "spectral": {k: v for k, v in (record.get("spectral") or {}).items()
                                              if k != "final"}})),
    ]
    return {
        "id": record["id"], "benchmark": record["benchmark"], "tier": record["tier"], "model": record["model"],
        "seed": record["seed"], "state": record["state"], "metric": metric, "mode": mode, "test_value": test_value,
        "dirty": bool((env.get("git") or {}).get("dirty")), "commit": (env.get("git") or {}).get("commit"),
        "weights": record.get("weights"), "released": released, "lengths": lengths,
        "reproduce": reproduce_command(record), "sections": sections,
        "decay": {k: (record.get("gradients") or {}).get(k) for k in ("decay_log10_at_init", "decay_log10_final")},
    }
