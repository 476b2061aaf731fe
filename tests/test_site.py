"""The static site (zoo.app.site), checked in Python: what it writes, that it writes it the same way every time,
that no page asks another host for anything, that the index is light, and that bad output folders are refused.
The browser half is tests/test_site_browser.py."""

from __future__ import annotations

import json
import re

import pytest

from site_checks import (COMMITTED, board_data, big_board, external_urls, parse, small_board, smnist_board, template,
                         write_records)
from zoo.app.boards import BUDGET_KEYS, SCORED, aggregate, build
from zoo.app.cli import main
from zoo.app.site import build_site, write_site
from zoo.app.site.schema import REQUIRED, record_rules
from zoo.app.site.source import boards_of
from zoo.app.site.svg import Chart, Line, render
from zoo.errors import ZooError
from zoo.records import READABLE_VERSIONS, SCHEMA, STATES, read_record, write_record

INDEX_BUDGET = 300_000  # bytes: the index page and every asset it loads


def text_files(site):
    return {p.relative_to(site).as_posix(): p for p in sorted(site.rglob("*")) if p.is_file()}


@pytest.fixture
def records(tmp_path):
    return write_records(tmp_path / "records", small_board())


def test_build_writes_the_site_with_the_boards(records, tmp_path):
    out = tmp_path / "boards"
    written = build(records, out)
    site = out / "site"
    files = text_files(site)
    assert {"index.html", "assets/site.css", "assets/board.js", "boards/adding_t100.cpu.html"} <= set(files)
    assert {f"records/{r['id']}.html" for r in small_board()} <= set(files)
    assert set(files.values()) <= set(written)
    for png in out.glob("*.png"):  # the boards' figures, copied as they are
        assert (site / "img" / png.name).read_bytes() == png.read_bytes()
    assert (site / "img" / "adding_t100.cpu.curves.png").is_file()
    page = (site / "boards" / "adding_t100.cpu.html").read_text()
    assert '<img src="../img/adding_t100.cpu.curves.png"' in page and "<svg" in page
    assert not list(tmp_path.rglob(".*.tmp")), "a temporary folder was left behind"


def test_board_rows_are_the_boards_ranking_and_failed_or_diverged_seeds_are_states(records, tmp_path):
    site = tmp_path / "site"
    build_site(records, site, figures=None)
    data = board_data(site / "boards" / "adding_t100.cpu.html")
    rows = aggregate([read_record(p) for p in sorted(records.rglob("*.json"))])
    keys = [c["key"] for c in data["columns"]]
    ours = [r for r in data["rows"] if r["kind"] == "ours"]
    assert [r["v"][keys.index("model")] for r in ours] == [r["model"] for r in rows]
    assert [r["v"][keys.index("rank")] for r in ours] == [r["rank"] for r in rows]
    assert [r["v"][keys.index("median")] for r in ours] == [r["median"] for r in rows]
    states = {r["id"]: r["state"] for r in small_board()}
    for row in ours:
        for rid, _, value in row["seeds"]:
            assert (value is None) == (states[rid] not in SCORED), rid  # a failed or diverged seed has no number
    html = (site / "boards" / "adding_t100.cpu.html").read_text()
    assert "beta.s1.html" in html and '<span class="state state-failed">failed</span>' in html
    assert "0.1666" not in html.split('id="board-data"')[0], "a failed seed's number is shown on the board"
    assert [c["key"] for c in data["columns"] if c["fixed"]] == ["rank", "model", "median"]


def test_published_numbers_are_external_rows_without_rank(tmp_path):
    from zoo.app.catalogue import BENCHMARKS

    site = tmp_path / "site"
    build_site(write_records(tmp_path / "records", smnist_board()), site, figures=None)
    data = board_data(site / "boards" / "smnist.cpu.html")
    keys = [c["key"] for c in data["columns"]]
    external = [r for r in data["rows"] if r["kind"] == "external"]
    anchors = BENCHMARKS["smnist"].anchors
    assert anchors and [r["v"][keys.index("median")] for r in external] == [a.value for a in anchors]
    assert all(r["v"][keys.index("rank")] is None for r in external)
    html = (site / "boards" / "smnist.cpu.html").read_text()
    rank_cells = re.findall(r'<tr data-i="\d+" class="row-external"><td class="c-rank num">(.*?)</td>', html)
    assert rank_cells == ['<span class="external-mark">external</span>'] * len(anchors)


def test_the_site_is_the_same_every_time_it_is_written(records, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    build_site(records, one, figures=None)
    build_site(records, two, figures=None)
    a, b = text_files(one), text_files(two)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name].read_bytes() == b[name].read_bytes(), name
    data = board_data(one / "boards" / "adding_t100.cpu.html")
    assert json.dumps(data, sort_keys=True, separators=(",", ":")) in (one / "boards" / "adding_t100.cpu.html").read_text()


def test_no_page_asks_another_host_for_anything(records, tmp_path):
    site = tmp_path / "site"
    build_site(records, site, figures=None)
    pages = [p for p in site.rglob("*.html")]
    assert pages
    for page in pages:
        links = parse(page)
        assert links.urls and external_urls(links) == [], page
        for url in links.urls:  # and every relative link lands on a file of the site
            target = (page.parent / url.split("#")[0]).resolve()
            assert url.startswith(("#", "data:")) or target.is_file(), (page, url)
    for path in site.rglob("*"):
        if path.suffix in (".html", ".css", ".js"):
            text = path.read_text(encoding="utf-8")
            assert "://" not in text and "@import" not in text, path
    script = (site / "assets" / "board.js").read_text()
    assert "fetch(" not in script and "XMLHttpRequest" not in script and "import(" not in script


def test_the_committed_site_passes_the_host_and_size_checks():
    site = COMMITTED / "site"
    if not (site / "index.html").is_file():
        pytest.skip("no committed site")
    for page in site.rglob("*.html"):
        assert external_urls(parse(page)) == [], page
    assert index_weight(site) <= INDEX_BUDGET


def index_weight(site) -> int:
    """The bytes a visitor's browser loads for the index: the page and every local file it links in."""
    links = parse(site / "index.html")
    loaded = {site / "index.html"} | {(site / u).resolve() for u in links.urls
                                      if u.endswith((".css", ".js", ".png", ".svg"))}
    return sum(p.stat().st_size for p in loaded)


def test_the_index_and_its_assets_are_light(records, tmp_path):
    site = tmp_path / "site"
    build_site(records, site, figures=None)
    weight = index_weight(site)
    assert 0 < weight <= INDEX_BUDGET, weight
    assert "assets/site.css" in parse(site / "index.html").urls


def test_the_browser_check_asks_for_what_read_record_requires(tmp_path):
    base = json.loads(json.dumps(template()))
    rules = record_rules(SCORED, BUDGET_KEYS)
    assert rules["schema"] == SCHEMA and rules["versions"] == list(READABLE_VERSIONS)
    assert rules["current_fields"]["state"] == list(STATES) and rules["budget_keys"] == list(BUDGET_KEYS)
    for key in REQUIRED:
        broken = {k: v for k, v in base.items() if k != key}
        write_record(tmp_path / f"{key}.json", broken)
        with pytest.raises(ZooError, match=f"has no '{key}' field"):
            read_record(tmp_path / f"{key}.json")


def test_a_folder_holding_other_files_is_never_replaced(records, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ZooError, match=r"--out .*mine.* already holds files that are not a site"):
        build_site(records, out, figures=None)
    assert (out / "notes.txt").read_text() == "keep me" and sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    with pytest.raises(ZooError, match="is a file, not a folder"):
        build_site(records, out / "notes.txt", figures=None)


def test_a_failed_write_leaves_the_old_site_whole(records, tmp_path, monkeypatch):
    from zoo.app.site import render as site_render

    site = tmp_path / "site"
    build_site(records, site, figures=None)
    before = {k: p.read_bytes() for k, p in text_files(site).items()}

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(site_render, "record_view", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        build_site(records, site, figures=None)
    assert {k: p.read_bytes() for k, p in text_files(site).items()} == before
    assert not list(tmp_path.glob(".site.*")), "a half-written site was left behind"


def test_a_removed_record_leaves_no_page_behind(records, tmp_path):
    site = tmp_path / "site"
    build_site(records, site, figures=None)
    assert (site / "records" / "adding_t100.cpu.gamma.s0.html").is_file()
    (records / "adding_t100" / "cpu" / "gamma.s0.json").unlink()
    build_site(records, site, figures=None)
    assert not (site / "records" / "adding_t100.cpu.gamma.s0.html").exists()


def test_leaderboard_site_command(records, tmp_path, capsys):
    out = tmp_path / "web"
    assert main(["leaderboard", "site", "--out", str(out), "--records", str(records), "--figures",
                 str(tmp_path / "none")]) == 0
    assert "wrote the site" in capsys.readouterr().out and (out / "index.html").is_file()
    dirty = read_record(records / "adding_t100" / "cpu" / "alpha.s0.json")
    dirty["environment"]["git"]["dirty"] = True
    write_record(records / "adding_t100" / "cpu" / "alpha.s0.json", dirty)
    with pytest.raises(ZooError, match=r"1 record\(s\) were made from a checkout with local changes.*--allow_dirty"):
        build_site(records, tmp_path / "web2", figures=None)
    build_site(records, tmp_path / "web2", figures=None, allow_dirty=True)
    page = (tmp_path / "web2" / "boards" / "adding_t100.cpu.html").read_text()
    assert "Made from a checkout with local changes" in page and "adding_t100.cpu.alpha.s0" in page


def test_a_record_page_has_its_config_versions_data_weights_charts_and_command(records, tmp_path):
    record = read_record(records / "adding_t100" / "cpu" / "alpha.s0.json")
    manifest = {"alpha.adding_t100": {"record": record["id"], "file": {"name": "alpha.safetensors", "bytes": 12,
                                                                       "sha256": "ab" * 32}}}
    site = tmp_path / "site"
    write_site(boards_of([read_record(p) for p in sorted(records.rglob("*.json"))]), site, figures=None,
               scored=SCORED, budget_keys=BUDGET_KEYS, manifest=manifest)
    page = (site / "records" / f"{record['id']}.html").read_text()
    assert "zoo reproduce leaderboards/records/adding_t100/cpu/alpha.s0.json" in page
    assert "ab" * 32 in page and "alpha.adding_t100" in page  # released: the file's sha256
    assert record["weights"]["sha256"] in page
    for value in (record["environment"]["packages"]["torch"], record["environment"]["git"]["commit"],
                  *record["data"].values(), record["config"]["model"]["backbone"]["cell"]):
        assert str(value) in page, value
    assert page.count("<svg") == 3  # training loss, validation metric, gradient profile
    other = (site / "records" / "adding_t100.cpu.beta.s0.html").read_text()
    assert "Not released as a pretrained model" in other


def test_charts_draw_only_finite_numbers():
    svg = render(Chart("t", "x", "y", [Line("a", [(1, 0.1), (2, float("nan")), (3, float("inf")), (4, -1.0),
                                                   (5, 0.01)])], y_log=True, rules=[("target", 0.05)]))
    assert "nan" not in svg.lower() and "inf" not in svg.lower()
    assert svg.count("<polyline") == 1 and len(svg.split('points="')[1].split('"')[0].split()) == 2
    assert render(Chart("t", "x", "y", [Line("a", [(1, float("nan"))])])) == ""


def test_a_big_board_builds(tmp_path):
    records = big_board(60)
    site = tmp_path / "site"
    write_site(boards_of(records), site, figures=None, scored=SCORED, budget_keys=BUDGET_KEYS, manifest={})
    data = board_data(site / "boards" / "adding_t100.big.html")
    assert len(data["rows"]) == 60 and len(list((site / "records").glob("*.html"))) == 60
