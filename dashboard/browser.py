"""Serve the dashboard and drive it in the system's headless Chromium (tests and bench only).

Needs the dev extra (selenium) and Debian's ``chromium`` and ``chromium-driver``; Selenium
Manager is kept offline (``SE_OFFLINE=1`` and explicit driver path), so nothing is downloaded.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

__all__ = ["CHROMEDRIVER", "CHROMIUM", "browser_available", "chart_sizes", "free_port",
           "grid_widths", "load_page", "make_driver", "page_width", "serve"]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
HOST = "127.0.0.1"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage")
START_TIMEOUT_S = 60.0
POLL_S = 0.2
CHART = '[data-testid="stVegaLiteChart"]'
RUNNING = '[data-testid="stStatusWidget"]'
GRID = '[data-testid="stDataFrame"]'


def browser_available() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve(runs: Path, port: int, journal: Path | None = None) -> Iterator[str]:
    """Run ``python -m dashboard`` headless on ``port``; yields its base URL."""
    root = Path(__file__).resolve().parent.parent
    command = [sys.executable, "-m", "dashboard", "--runs", str(runs), "--port", str(port),
               "--headless"] + (["--journal", str(journal)] if journal else [])
    process = subprocess.Popen(command, cwd=root, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    url = f"http://{HOST}:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"dashboard exited: {process.stdout.read()[-2000:]}")
            with contextlib.suppress(OSError), \
                    urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"dashboard did not answer on {url} in {START_TIMEOUT_S} s")
            time.sleep(POLL_S)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def make_driver(user_data_dir: Path, width: int = 1400, height: int = 1000) -> webdriver.Chrome:
    """Headless Chromium through the system chromedriver; Selenium Manager stays offline."""
    os.environ["SE_OFFLINE"] = "1"
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    options.add_argument(f"--window-size={width},{height}")
    return webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)


def chart_sizes(driver: webdriver.Chrome) -> list[tuple[int, int, int]]:
    """(width, height, drawn marks) of each rendered Vega-Lite chart's canvas or SVG."""
    script = f"""
      return Array.from(document.querySelectorAll('{CHART}')).map(el => {{
        const c = el.querySelector('canvas, svg.marks');
        if (!c) return [0, 0, 0];
        const r = c.getBoundingClientRect();
        let marks = 0;
        if (c.tagName.toLowerCase() === 'canvas') {{
          const ctx = c.getContext('2d');
          const d = ctx.getImageData(0, 0, c.width, c.height).data;
          for (let i = 3; i < d.length; i += 4 * 97) if (d[i] > 0) marks++;
        }} else {{ marks = c.querySelectorAll('path, rect, line').length; }}
        return [Math.round(r.width), Math.round(r.height), marks];
      }});"""
    return [tuple(x) for x in driver.execute_script(script)]


def grid_widths(driver: webdriver.Chrome) -> list[tuple[int, int]]:
    """(visible width, content width) of each table (Streamlit's data grid): a content width
    above the visible one means columns pushed off-screen behind a scroll bar."""
    script = f"""
      return Array.from(document.querySelectorAll('{GRID}')).map(el => {{
        const s = el.querySelector('.dvn-scroller');
        return s ? [s.clientWidth, s.scrollWidth] : [0, 0];
      }});"""
    return [tuple(x) for x in driver.execute_script(script)]


def page_width(driver: webdriver.Chrome) -> tuple[int, int]:
    """(window width, document width): a wider document scrolls sideways."""
    return tuple(driver.execute_script(
        "return [window.innerWidth, document.documentElement.scrollWidth]"))


def load_page(driver: webdriver.Chrome, url: str, text: str, charts: int = 1,
              timeout_s: float = 60.0) -> float:
    """Open ``url`` and wait until ``text`` is on the page, the script has finished and at least
    ``charts`` charts have drawn something; returns the seconds it took."""
    start = time.monotonic()
    driver.get(url)
    while True:
        body = driver.find_element(By.TAG_NAME, "body").text
        running = driver.find_elements(By.CSS_SELECTOR, RUNNING)
        drawn = [s for s in chart_sizes(driver) if s[0] > 0 and s[1] > 0 and s[2] > 0]
        if text in body and not running and len(drawn) >= charts:
            return time.monotonic() - start
        if time.monotonic() - start > timeout_s:
            raise TimeoutError(f"{url}: after {timeout_s} s text {text!r} "
                               f"{'found' if text in body else 'missing'}, "
                               f"{len(drawn)} of {charts} chart(s) drawn")
        time.sleep(POLL_S)
