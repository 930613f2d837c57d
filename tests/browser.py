"""A real browser for the tests: Debian's Chromium driven by selenium, JupyterLab started on loopback with a
token, and a static server for the course website. Screenshots go to artifacts/browser/ (git-ignored).

Where no Chromium (or its driver) can be had, `chromium()` skips the test with the reason; `make` installs
both when it runs as root with apt, as CI does, so there they run.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "artifacts" / "browser"
# As the machine notes advise: no background connections, which a closed network refuses by the dozen.
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1000"]


def chromium():
    """A headless Chromium under selenium, or a skip saying what is missing."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not browser or not driver:
        pytest.skip("no browser: install Chromium and its driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = browser
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={Path(os.environ.get('TMPDIR', '/tmp')) / ('chromium-' + secrets.token_hex(4))}")
    return webdriver.Chrome(service=Service(driver), options=options)


def screenshot(driver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, timeout: float = 60, every: float = 0.25, what: str = "the page"):
    """Poll `condition()` until it returns something true; fail saying what never happened."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            value = condition()
            if value:
                return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@contextlib.contextmanager
def jupyter_lab(root: Path):
    """JupyterLab serving `root` on loopback with a random token; yields a function making notebook URLs."""
    port, token = free_port(), secrets.token_hex(16)
    home = root / ".jupyter-home"
    settings = home / "lab-settings" / "@jupyterlab"
    for extension, name, values in [
        ("apputils-extension", "notification", {"fetchNews": "false", "checkForUpdates": False}),  # no news pop-up
        ("notebook-extension", "tracker", {"windowingMode": "none"}),  # every cell in the page, not just those in view
    ]:
        (settings / extension).mkdir(parents=True, exist_ok=True)
        (settings / extension / f"{name}.jupyterlab-settings").write_text(json.dumps(values))
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"), JUPYTERLAB_SETTINGS_DIR=str(home / "lab-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), JUPYTER_RUNTIME_DIR=str(home / "runtime"))
    command = [str(Path(sys.executable).parent / "jupyter"), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
               f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root"]
    log = (root / ".jupyter-lab.log").open("w")
    server = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2).status == 200,
                 timeout=90, what="JupyterLab to start")
        yield lambda path: f"http://127.0.0.1:{port}/lab/tree/{path}?token={token}&reset"
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=20)
        if server.poll() is None:
            server.kill()
        log.close()


@contextlib.contextmanager
def static_server(folder: Path):
    """A static web server for `folder` on loopback; yields its base URL."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


# ---- JupyterLab, as a person uses it


def menu(driver, *path: str) -> None:
    """Click through JupyterLab's menu bar: menu(driver, "Run", "Run All Cells")."""
    from selenium.webdriver.common.by import By

    top = wait_for(lambda: next(e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-itemLabel") if e.text == path[0]),
                   what=f"the {path[0]} menu")
    top.click()
    for label in path[1:]:
        item = wait_for(lambda label=label: next(e for e in driver.find_elements(By.CSS_SELECTOR, ".lm-Menu-itemLabel")
                                                 if e.text == label and e.is_displayed()), what=f"the menu item {label}")
        item.click()


def open_notebook(driver, url: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(url)
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell"), timeout=90, what="the notebook")
    wait_for(lambda: kernel_status(driver) == "idle", timeout=90, what="the kernel to start")
    time.sleep(2)  # the kernel's first answer comes a moment after the indicator shows it idle


def kernel_status(driver) -> str | None:
    """The notebook toolbar's execution indicator: "idle", "busy", ... (None before it exists)."""
    return driver.execute_script(
        "const e = document.querySelector('.jp-Notebook-ExecutionIndicator'); return e && e.dataset.status")


def run_all_and_wait(driver, timeout: float = 300) -> None:
    """Clear every output, Run All Cells, then wait until every code cell has run and the kernel is idle again."""
    from selenium.webdriver.common.by import By

    menu(driver, "Edit", "Clear Outputs of All Cells")
    wait_for(lambda: not any(p.text.strip(" []:") for p in driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputArea-prompt")),
             timeout=30, what="the outputs to clear")
    menu(driver, "Run", "Run All Cells")

    def finished():
        prompts = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".jp-CodeCell .jp-InputArea-prompt")]
        done = prompts and all(p.strip(" []:").isdigit() for p in prompts)
        return done and kernel_status(driver) == "idle"

    wait_for(finished, timeout=timeout, every=0.5, what="every cell to run")


def save(driver) -> None:
    menu(driver, "File", "Save Notebook")
    time.sleep(1.5)


def type_into_cell(driver, index: int, code: str) -> None:
    """Replace the text of the notebook's `index`-th cell by typing `code` (one-line statements: no auto-indent)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    cell = driver.find_elements(By.CSS_SELECTOR, ".jp-Notebook .jp-Cell")[index]
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", cell)
    editor = cell.find_element(By.CSS_SELECTOR, ".cm-content")
    editor.click()
    editor.send_keys(Keys.CONTROL, "a")
    editor.send_keys(Keys.DELETE)
    for number, line in enumerate(code.splitlines()):
        if number:
            editor.send_keys(Keys.ENTER)  # after a top-level line the editor indents nothing
        editor.send_keys(line)
    editor.send_keys(Keys.ESCAPE)
