"""End to end in headless Chromium (Debian's chromium + chromedriver, through selenium): the real
``citizen serve --demo`` on a free port (its own simulators and terminal gateway, this test's
database), the demo citizen signing in with a code from the development SMS gateway, the QR code,
a 20 yuan top-up paid at the simulated channel, the new balance; then ``citizen-terminals load``
and the demo operator watching the bus readers and their transactions in the console.
Screenshots go to ``artifacts/screenshots/`` (CI keeps that folder).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from backend.settings import Settings
from integrations.simulators.seed import DEMO_CITIZEN

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "artifacts" / "screenshots"
BIN = Path(sys.executable).parent


def _browser_or_skip() -> tuple[str, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if chromium and driver:
        return chromium, driver
    if os.environ.get("CI"):
        pytest.fail("chromium and chromedriver must be installed in CI (.ci/run installs them)")
    pytest.skip("no chromium/chromedriver here (apt-get install chromium chromium-driver); CI runs this")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, base: str, terminal_port: int, output: Path) -> None:
        self.base = base
        self.terminal_port = terminal_port
        self.output = output

    def printed(self) -> str:
        return self.output.read_text(errors="replace")

    def operator_password(self) -> str:
        found = re.search(r"operator demo-admin / (\S+)", self.printed())
        assert found, self.printed()
        return found.group(1)


@pytest.fixture
def server(database_url: str, settings: Settings, tmp_path: Path) -> Iterator[Server]:
    port, terminal_port = _free_port(), _free_port()
    assert settings.redis.url is not None
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITIZEN_")}
    env.update(
        {
            "CITIZEN_ENV": "development",
            "CITIZEN_DATA_DIR": str(tmp_path / "var"),
            "CITIZEN_DATABASE_URL": database_url,
            "CITIZEN_REDIS_URL": settings.redis.url.reveal(),
            "CITIZEN_HTTP_PORT": str(port),
            "CITIZEN_TERMINAL_PORT": str(terminal_port),
            "CITIZEN_LOG_JSON": "false",
            "CITIZEN_LOG_LEVEL": "WARNING",
        }
    )
    output = tmp_path / "serve.log"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [str(BIN / "citizen"), "serve", "--demo"], env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, output.read_text(errors="replace")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, output.read_text(errors="replace")
            time.sleep(0.5)
        yield Server(base, terminal_port, output)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def browser() -> Iterator[object]:
    chromium, driver_path = _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="citizen-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--window-size=1280,1000", "--lang=zh-CN",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _shot(driver: object, name: str) -> Path:
    from selenium.webdriver.remote.webdriver import WebDriver

    assert isinstance(driver, WebDriver)
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(800, min(int(height) + 40, 4000)))
    driver.save_screenshot(str(path))
    return path


def _latest_code(base: str) -> str:
    messages = httpx.get(
        f"{base}/api/v1/identity/dev/sms", params={"mobile": DEMO_CITIZEN.mobile, "limit": 1}, timeout=10
    ).json()
    found = re.search(r"\b(\d{6})\b", messages[0]["text"])
    assert found, messages
    return found.group(1)


def _navigates(driver: object, wait: object, action: Callable[[], object]) -> None:
    """Run ``action`` (a click that submits a form or follows a link) and wait until the old page
    is gone. Looking for an element while Chromium swaps documents can find it in the old page and
    then fail inside the driver ("unhandled inspector error"), so every navigation is awaited."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    assert isinstance(driver, WebDriver) and isinstance(wait, WebDriverWait)
    old = driver.find_element(By.TAG_NAME, "html")
    action()
    wait.until(ec.staleness_of(old))


def test_citizen_tops_up_and_operator_watches_terminals(server: Server, browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser
    assert isinstance(driver, WebDriver)
    wait = WebDriverWait(driver, 30)

    # The citizen: sign in at the provider with a one-time code.
    driver.get(f"{server.base}/web/?lang=zh-CN")  # headless Chromium asks for en-US
    _navigates(driver, wait, driver.find_element(By.ID, "sign-in").click)
    wait.until(ec.presence_of_element_located((By.ID, "m1"))).send_keys(DEMO_CITIZEN.mobile)
    _navigates(driver, wait, driver.find_element(By.CSS_SELECTOR, "form[action$='/send-code'] button").click)
    wait.until(ec.presence_of_element_located((By.ID, "c1"))).send_keys(_latest_code(server.base))
    _shot(driver, "01-provider-login")
    _navigates(driver, wait, driver.find_element(By.CSS_SELECTOR, "#c1 ~ button").click)

    # The card with its live QR code and the balance.
    wait.until(ec.presence_of_element_located((By.ID, "card-number")))
    qr = wait.until(ec.presence_of_element_located((By.ID, "qr")))
    wait.until(
        lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", qr)
    )
    balance = int(driver.find_element(By.ID, "balance").get_attribute("data-fen") or 0)
    assert DEMO_CITIZEN.name in driver.find_element(By.ID, "person-name").text
    _shot(driver, "02-citizen-card")

    # A wrong amount first: the error in the page's language next to the field.
    driver.find_element(By.ID, "amount").send_keys("twenty")
    driver.find_element(By.ID, "channel-alipay").click()
    _navigates(driver, wait, driver.find_element(By.ID, "topup-submit").click)
    error = wait.until(ec.presence_of_element_located((By.ID, "amount-error")))
    assert "金额格式不正确" in error.text
    _shot(driver, "03-form-error")

    # Top up 20 yuan (a double click still makes one order), pay at the simulated channel.
    field = driver.find_element(By.ID, "amount")
    field.clear()
    field.send_keys("20")
    driver.find_element(By.ID, "channel-alipay").click()
    button = driver.find_element(By.ID, "topup-submit")
    _navigates(
        driver, wait, lambda: driver.execute_script("arguments[0].click(); arguments[0].click();", button)
    )
    _navigates(driver, wait, wait.until(ec.presence_of_element_located((By.ID, "simulate-pay"))).click)
    credited = wait.until(ec.visibility_of_element_located((By.ID, "order-credited")))
    expected = f"¥{(balance + 2000) / 100:.2f}"
    wait.until(lambda d: d.find_element(By.ID, "new-balance").text == expected)
    assert expected in credited.text
    _shot(driver, "04-topup-credited")
    _navigates(driver, wait, driver.find_element(By.ID, "back").click)
    wait.until(lambda d: d.find_element(By.ID, "balance").text.replace(",", "") == expected)
    rows = driver.find_elements(By.CSS_SELECTOR, "#recent tbody tr")
    assert len([r for r in rows if "¥20.00" in r.text]) == 1  # one order for the double click
    _shot(driver, "05-citizen-card-after-topup")
    _navigates(driver, wait, driver.find_element(By.ID, "switch-language").click)
    wait.until(lambda d: d.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en")
    _shot(driver, "06-citizen-card-en")

    # Bus readers from `citizen-terminals load`, signed on and uploading.
    load = subprocess.run(
        [
            str(BIN / "citizen-terminals"),
            "--api",
            server.base,
            "--port",
            str(server.terminal_port),
            "--password",
            server.operator_password(),
            "load",
            "--readers",
            "2",
            "--kiosks",
            "0",
            "--cards",
            "4",
            "--taps",
            "40",
            "--duration",
            "0",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert load.returncode == 0, load.stdout + load.stderr

    # The operator: sign in, the terminal list, the chart, the settlements.
    driver.get(f"{server.base}/console/")
    wait.until(ec.presence_of_element_located((By.ID, "username"))).send_keys("demo-admin")
    driver.find_element(By.ID, "password").send_keys(server.operator_password())
    _navigates(driver, wait, driver.find_element(By.ID, "operator-sign-in").click)
    wait.until(ec.presence_of_element_located((By.ID, "terminals")))
    terminals = driver.find_elements(By.CSS_SELECTOR, "tr.terminal")
    assert len(terminals) >= 2, driver.page_source[:3000]
    assert any("bus" in row.text for row in terminals)
    chart = driver.find_element(By.ID, "chart")
    wait.until(
        lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", chart)
    )
    assert driver.find_element(By.ID, "settlements").is_displayed()
    _shot(driver, "07-console")

    # Search by ID number: masked, never the number itself.
    driver.get(f"{server.base}/console/search")
    driver.find_element(By.ID, "q").send_keys(DEMO_CITIZEN.id_number)
    _navigates(driver, wait, driver.find_element(By.ID, "search-submit").click)
    wait.until(ec.presence_of_element_located((By.ID, "results")))
    assert DEMO_CITIZEN.id_number not in driver.page_source
    assert driver.find_elements(By.CSS_SELECTOR, "tr.person")
    _shot(driver, "08-console-search")
