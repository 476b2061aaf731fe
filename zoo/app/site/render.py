"""The static site written from built boards: index, one page per board, one per record, CSS, our script, PNGs.

    site/index.html                 benchmarks and tiers
    site/boards/<bench>.<tier>.html one board: sortable, filterable table, plots, drop-a-record
    site/records/<record id>.html   one run: config, versions, device, commit, data, weights, charts
    site/assets/                    site.css, board.js (ours; nothing from another host)
    site/img/                       the boards' PNGs, copied

Each board's data is embedded in its page as JSON (``<script type="application/json">``),
since a page opened from file:// cannot fetch(). The output is deterministic (sorted keys,
no timestamps), so the committed site is exactly what a build writes. The site is written
into a temporary folder beside ``out`` and swapped in whole: a reader never sees half a
site, and a record that left the board leaves no stale page behind.

This module does not import ``zoo.app.boards`` (whose ``build`` calls it): the boards' rules
it needs (the scored states, the budget settings) are passed in.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup, escape

from zoo.app.site.board_data import board_view, num, state_badge
from zoo.app.site.charts import curve_charts, gradient_chart, lengths_chart, params_chart
from zoo.app.site.record_view import record_view, reproduce_command
from zoo.app.site.schema import record_rules
from zoo.errors import ZooError
from zoo.files import check_folder, write_text_atomic

HERE = Path(__file__).resolve().parent
GENERATOR = "rnn-zoo leaderboard site"  # in every page's <meta name="generator">: how a folder is known to be ours
FIGURE_KINDS = ("study", "curves", "gradients")  # the boards' PNGs (zoo.app.boards.write_figures), shown in this order
ASSETS = ("site.css", "board.js")


def json_script(obj: Any) -> Markup:
    """JSON for a ``<script type="application/json">``: sorted keys, and no ``<`` that could close the tag."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def budget_text(settings: dict[str, Any]) -> str:
    """A run's budget in words: ``3,000 steps, stopping at the target``."""
    trainer = settings["trainer"]
    parts = []
    if (trainer.get("max_steps") or 0) > 0:
        parts.append(f"{trainer['max_steps']:,} steps")
    if (trainer.get("max_epochs") or 0) > 0:
        parts.append(f"{trainer['max_epochs']} epochs")
    if trainer.get("max_minutes"):
        parts.append(f"{trainer['max_minutes']:g} minutes of wall clock (a record from before budgets were steps)")
    return " or ".join(parts or ["none"]) + (", stopping at the target" if settings.get("stop_at_target") else "")


MD_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")


def md_links(text: str, pages: set[str]) -> Markup:
    """A catalogue note's Markdown links (``[adding_t100.cpu.md](adding_t100.cpu.md)``) as links to board pages;
    a link to anything that is not a board of this site stays as its text."""
    out, at = [], 0
    for match in MD_LINK.finditer(text):
        out.append(escape(text[at:match.start()]))
        label, target = match.group(1), match.group(2)
        stem = target.removesuffix(".md")
        out.append(Markup('<a href="{}.html">{}</a>').format(stem, label) if stem in pages else escape(label))
        at = match.end()
    out.append(escape(text[at:]))
    return Markup("").join(out)


def environment(stems: set[str]) -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(json_script=json_script, num=num, state=state_badge, budget=budget_text,
                       md_links=lambda text: md_links(text, stems))
    env.globals["generator"] = GENERATOR
    return env


def released_by_record(manifest: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The released models (``zoo.pretrained.manifest()``) by the record each was exported from."""
    return {entry["record"]: {"name": name, "file": entry.get("file") or {}}
            for name, entry in sorted(manifest.items()) if entry.get("record")}


def _check_out(out: Path) -> None:
    """Refuse to replace a folder that holds anything but a site of ours: it would be deleted."""
    if not out.exists() or not any(out.iterdir()):
        return
    index = out / "index.html"
    if not (index.is_file() and f'content="{GENERATOR}"' in index.read_text(encoding="utf-8", errors="replace")):
        raise ZooError(f"--out {str(out)!r} already holds files that are not a site written by `zoo leaderboard "
                       "site`, and writing the site there would replace them; pick a new or empty folder")


def _swap_in(tmp: Path, out: Path) -> None:
    """Put the finished folder ``tmp`` where ``out`` is, the old one moved aside first and then deleted."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.{secrets.token_hex(4)}.old.tmp"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def write_site(boards: list[dict[str, Any]], out: str | os.PathLike, *, figures: str | os.PathLike | None,
               scored: tuple[str, ...], budget_keys: tuple[str, ...],
               manifest: dict[str, dict[str, Any]] | None = None) -> list[Path]:
    """Write the site for ``boards`` (each {"benchmark", "tier", "rows", "records", "stem"}, as
    ``zoo.app.boards.build`` makes them) to ``out``; returns the files written.

    ``figures`` is the folder holding the boards' PNGs (None: no PNGs); ``manifest`` the
    released models (default: the package's, ``zoo.pretrained.manifest()``).
    """
    from zoo.app.catalogue import BENCHMARKS

    out = check_folder("--out", out)
    _check_out(out)
    if manifest is None:
        from zoo.pretrained import manifest as package_manifest

        manifest = package_manifest()
    released = released_by_record(manifest)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{secrets.token_hex(4)}.tmp"
    tmp.mkdir()
    try:
        relative = _write_pages(boards, tmp, figures, BENCHMARKS, record_rules(scored, budget_keys), released)
        _swap_in(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out / name for name in relative]


def _write_pages(boards: list[dict[str, Any]], root: Path, figures: str | os.PathLike | None,
                 benchmarks: dict[str, Any], rules: dict[str, Any], released: dict[str, Any]) -> list[str]:
    env = environment({b["stem"] for b in boards})
    written: list[str] = []

    def put(name: str, text: str) -> None:
        write_text_atomic(root / name, text)
        written.append(name)

    for asset in ASSETS:
        put(f"assets/{asset}", (HERE / "static" / asset).read_text(encoding="utf-8"))
    boards = sorted(boards, key=lambda b: (b["benchmark"], b["tier"]))
    pages = {(b["benchmark"], b["tier"]): f"{b['stem']}.html" for b in boards}
    index_rows = []
    for board in boards:
        bench = benchmarks.get(board["benchmark"])
        task = board["records"][0]["task"]
        images = []
        for kind in FIGURE_KINDS:
            source = Path(figures) / f"{board['stem']}.{kind}.png" if figures is not None else None
            if source is not None and source.is_file():
                (root / "img").mkdir(exist_ok=True)
                shutil.copyfile(source, root / "img" / source.name)
                written.append(f"img/{source.name}")
                images.append({"src": f"../img/{source.name}", "kind": kind})
        view = board_view(board, bench, scored=tuple(rules["scored"]), boards=pages)
        first = next(r for r in board["records"] if r["id"] == board["rows"][0]["records"][0])
        charts = [c for c in (params_chart(board["rows"], task, bench.anchors if bench else ()),
                              lengths_chart(board["rows"], board["records"], task)) if c]
        dirty = sorted(r["id"] for r in board["records"]
                       if ((r.get("environment") or {}).get("git") or {}).get("dirty"))
        put(f"boards/{board['stem']}.html", env.get_template("board.html").render(
            root="../", board=board, bench=bench, task=task, view=view, images=images, charts=charts, rules=rules,
            settings=view["data"]["settings"], dirty=dirty,
            reproduce=reproduce_command(first).removeprefix("zoo reproduce "),
            title=f"{board['benchmark']} — {board['tier']} tier"))
        for record in sorted(board["records"], key=lambda r: r["id"]):
            rec = record_view(record, released.get(record["id"]))
            put(f"records/{record['id']}.html", env.get_template("record.html").render(
                root="../", rec=rec, board_page=pages[(board["benchmark"], board["tier"])], title=record["id"],
                curves=curve_charts(record), gradient=gradient_chart(record)))
        best = board["rows"][0]
        index_rows.append({"board": board, "page": f"boards/{board['stem']}.html", "best": best,
                           "runs": len(board["records"]),
                           **{s: sum(r[s] for r in board["rows"]) for s in ("solved", "failed", "diverged")}})
    put("index.html", env.get_template("index.html").render(root="", boards=index_rows, benchmarks=benchmarks,
                                                            title="Leaderboards"))
    return sorted(written)
