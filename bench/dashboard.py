"""Dashboard speed: how long the Performance page takes to load a 5-seed run in a real browser.

Builds a synthetic 5-seed run folder (the tests' ``make_run``: 5 PPO seeds and 3 baselines over
a 124-bar evaluation, every file the pages read), serves it with ``python -m dashboard`` and
loads ``/performance`` in Debian's headless Chromium, from navigation until the script has
finished, the run's name is on the page and three charts have drawn marks. The first load reads
the files (cold caches); the next ones are fresh browser sessions served from the app's short
read cache. ``--shots DIR --run NAME --runs RUNS [--journal PATH]`` instead saves a PNG of each
page of RUNS/NAME (the screenshots under docs/).

    python bench/dashboard.py [--loads 5]
    python bench/dashboard.py --shots docs --runs runs --run quick [--journal j.sqlite]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from dashboard import browser  # noqa: E402
from tests.dashboard_data import make_run  # noqa: E402

PAGES = {"runs": 0, "performance": 3, "forecasts": 2, "positions": 3, "live": 1, "training": 1}
SETTLE_S = 1.0  # let the last chart finish its transition before the screenshot
SHOT_SIZE = (1280, 1000)
SHOT_COLOURS = 128  # palette PNGs keep the screenshots small


def time_performance(loads: int) -> list[float]:
    with tempfile.TemporaryDirectory() as tmp:
        runs = Path(tmp) / "runs"
        made = time.perf_counter()
        make_run(runs / "five", name="five", seeds=5)
        print(f"synthetic 5-seed run written in {time.perf_counter() - made:.1f} s")
        seconds = []
        with browser.serve(runs, browser.free_port()) as url:
            for k in range(loads):
                driver = browser.make_driver(Path(tmp) / f"profile{k}")
                try:
                    seconds.append(browser.load_page(driver, f"{url}/performance?run=five",
                                                     "run: five", charts=3))
                finally:
                    driver.quit()
    return seconds


def screenshots(runs: Path, run: str, out: Path, journal: Path | None) -> None:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    with browser.serve(runs, browser.free_port(), journal) as url, \
            tempfile.TemporaryDirectory() as tmp:
        driver = browser.make_driver(Path(tmp), *SHOT_SIZE)
        try:
            for page, charts in PAGES.items():
                path = "" if page == "runs" else page  # the default page is served at /
                browser.load_page(driver, f"{url}/{path}?run={run}", f"run: {run}"
                                  if page not in ("runs", "live") else page.title(), charts)
                time.sleep(SETTLE_S)
                path = out / f"dashboard_{page}.png"
                driver.save_screenshot(str(path))
                Image.open(path).convert("RGB").quantize(SHOT_COLOURS).save(path, optimize=True)
                print(f"{path}: {path.stat().st_size / 1024:.0f} KB")
        finally:
            driver.quit()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=5)
    parser.add_argument("--shots", type=Path, help="save a PNG of each page in this folder")
    parser.add_argument("--runs", type=Path, default=Path("runs"))
    parser.add_argument("--run", default="quick")
    parser.add_argument("--journal", type=Path)
    args = parser.parse_args()
    if args.shots:
        screenshots(args.runs, args.run, args.shots, args.journal)
        return 0
    seconds = time_performance(args.loads)
    print("Performance page, 5-seed run, headless Chromium: "
          + ", ".join(f"{s:.2f}" for s in seconds) + " s")
    print(f"first (cold) {seconds[0]:.2f} s; median of the rest "
          f"{statistics.median(seconds[1:] or seconds):.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
