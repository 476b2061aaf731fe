"""How fast a 1,000-row board sorts and filters in headless Chromium, against the 100 ms goal (issue 23).

    python scripts/site_speed.py            # needs chromium, chromium-driver and selenium (the test extra)

Builds a site with a synthetic 1,000-row board (zoo/app/site/synthetic.py, the browser tests' own), opens it from a
server on 127.0.0.1 and times one sort click plus one filter click, layout included,
``--reps`` times. The baseline, in the same page: the part of the cost that is the browser's and not our
script's: the shown rows' HTML set again and laid out. Prints both medians and their ratio. A speed goal is measured here, never by a
timed test.
"""

from __future__ import annotations

import functools
import http.server
import statistics
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The board is copies of this committed record (curves and gradients left out).
TEMPLATE = ROOT / "leaderboards" / "records" / "adding_t100" / "cpu" / "gru_1x128.s0.json"

GOAL_MS = 100.0
BASELINE = """
    const body = document.querySelector('#board tbody'), html = body.innerHTML;
    const t0 = performance.now();
    body.innerHTML = html;  // the same rows rebuilt and laid out: the floor any script pays
    document.body.offsetHeight;
    return performance.now() - t0;"""


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def main() -> int:
    import argparse

    from selenium.webdriver.support.ui import WebDriverWait
    from zoo.app.boards import BUDGET_KEYS, SCORED
    from zoo.app.site import write_site
    from zoo.app.site.source import boards_of
    from zoo.app.site.synthetic import SORT_AND_FILTER, big_board, browser_paths
    from zoo.records import read_record, record_path, write_record

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=21)
    args = parser.parse_args()
    CHROMIUM, CHROMEDRIVER = browser_paths()
    if not CHROMIUM or not CHROMEDRIVER:
        parser.error("needs chromium and chromedriver (apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        records = big_board(read_record(TEMPLATE), args.rows)
        for r in records:
            write_record(record_path(root / "records", r["benchmark"], r["tier"], r["model"], r["seed"]), r)
        write_site(boards_of(records), root / "site", figures=None, scored=SCORED, budget_keys=BUDGET_KEYS,
                   manifest={})
        page = next((root / "site" / "boards").glob("*.big.html")).relative_to(root / "site")
        handler = functools.partial(Quiet, directory=str(root / "site"))
        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        options = Options()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1400,1000"):
            options.add_argument(arg)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            driver.get(f"http://127.0.0.1:{httpd.server_address[1]}/{page.as_posix()}")
            WebDriverWait(driver, 30).until(lambda d: d.execute_script(
                "return document.documentElement.getAttribute('data-board-ready')") == "1")
            ours = [driver.execute_script(SORT_AND_FILTER) for _ in range(args.reps)]
            base = [driver.execute_script(BASELINE) for _ in range(args.reps)]
        finally:
            driver.quit()
            httpd.shutdown()
    mine, theirs = statistics.median(ours), statistics.median(base)
    print(f"{args.rows}-row board, sort + filter with layout: median {mine:.1f} ms over {args.reps} "
          f"(goal < {GOAL_MS:g} ms: {'met' if mine < GOAL_MS else 'not met'})")
    print(f"baseline, the shown rows rebuilt and laid out: median {theirs:.1f} ms; ratio {mine / max(theirs, 1e-3):.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
