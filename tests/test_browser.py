"""The case-study explorer in a real browser: JupyterLab started on loopback, notebook 05 run on the smoke profile
with ``interactive = True`` in headless Chromium (Playwright), a widget changed, the figure redrawn.

Needs Debian's Chromium (``/usr/bin/chromium``) and the ``playwright`` package (``pip install -e ".[browser]"``);
``.ci/run`` installs both. Works on a copy of ``notebooks/`` in a temporary folder, so the repository is untouched.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [pytest.mark.browser, pytest.mark.notebooks]
playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright (the browser extra)")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "seqrec-browser-test"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _explorer_notebook(folder: Path, outputs: Path) -> str:
    """Copy notebook 05 into ``folder`` with its parameters set to the smoke profile, the live explorer and
    ``outputs``; returns its file name."""
    nb = json.loads((ROOT / "notebooks" / "05_case_study.ipynb").read_text())
    cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
    source = "".join(cell["source"])
    source = re.sub(r'^profile = .*$', 'profile = "smoke"', source, flags=re.M)
    source = re.sub(r'^outputs = .*$', f'outputs = "{outputs}"', source, flags=re.M)
    source = re.sub(r'^interactive = .*$', 'interactive = True', source, flags=re.M)
    cell["source"] = source
    (folder / "05_case_study.ipynb").write_text(json.dumps(nb))
    return "05_case_study.ipynb"


@pytest.fixture()
def lab(tmp_path: Path):
    """A JupyterLab of this environment serving ``tmp_path/notebooks`` on loopback; yields its base URL."""
    folder = tmp_path / "notebooks"
    folder.mkdir()
    port = _free_port()
    env = {**os.environ, "JUPYTER_PREFER_ENV_PATH": "1", "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1",
                               "--port", str(port), f"--IdentityProvider.token={TOKEN}",
                               "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={folder}",
                               *(["--allow-root"] if os.geteuid() == 0 else [])],
                              stdout=log, stderr=subprocess.STDOUT, cwd=folder, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if server.poll() is not None:
                    pytest.fail(f"JupyterLab exited: {(tmp_path / 'lab.log').read_text()[-2000:]}")
                time.sleep(1)
        else:
            pytest.fail(f"JupyterLab did not answer on {url}: {(tmp_path / 'lab.log').read_text()[-2000:]}")
        yield url, folder, tmp_path / "out"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()


def test_the_explorer_redraws_when_the_user_changes(lab) -> None:
    url, folder, outputs = lab
    name = _explorer_notebook(folder, outputs)
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            page.goto(f"{url}/lab/tree/{name}?token={TOKEN}", timeout=120_000)
            page.wait_for_selector(".jp-Notebook", timeout=120_000)
            page.wait_for_function("window.jupyterapp !== undefined", timeout=60_000)
            page.wait_for_function("document.querySelector('.jp-Notebook') !== null && "
                                   "window.jupyterapp.shell.currentWidget?.sessionContext?.session?.kernel?.status"
                                   " === 'idle'", timeout=180_000)
            page.evaluate("window.jupyterapp.commands.execute('notebook:run-all-cells')")
            figure = page.locator(".widget-output img").first          # the explorer's figure, inside its widget
            figure.wait_for(timeout=240_000)
            before = figure.get_attribute("src")
            user = page.locator(".widget-inline-hbox input[type='number']").first
            user.fill("2")
            user.press("Enter")
            page.wait_for_function("src => { const img = document.querySelector('.widget-output img');"
                                   " return img !== null && img.getAttribute('src') !== src; }", arg=before,
                                   timeout=120_000)
            status = page.locator(".widget-html").first.inner_text()
        except playwright.Error:
            page.screenshot(path=str(outputs.parent / "failed.png"))
            raise
        finally:
            browser.close()
    assert "user 2 of" in status, status
