"""Live: the results pages as a person sees them. A real Airflow (started by the test) runs the
background-removal DAG on photos dropped in its folder (one of them broken) and an ID-photo batch;
then Debian's headless Chromium, driven through chromium-driver, logs in on Airflow's own login
page, opens the plugin's pages from the navigation entry, checks every image loaded and saves
screenshots (``out/screenshots/``; the README shows copies from ``include/docs/``).

Also through plain HTTP: no page and no image without a logged-in user, a forged token is refused,
a URL cannot reach a file outside the run (image URLs carry an index, nothing else), and the
operators' "Results" extra link points at the run's page.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from conftest import ROOT, SAMPLES, backdate
from live_airflow import LiveAirflow

pytestmark = pytest.mark.live

SHOTS = ROOT / "out" / "screenshots"


@pytest.fixture(scope="module")
def airflow(tmp_path_factory, model_store):
    data = tmp_path_factory.mktemp("ui-data")
    live = LiveAirflow(
        home=tmp_path_factory.mktemp("ui-airflow-home"),
        extra_env={
            "AIRFLOW__MATTING__DATA_DIR": str(data),
            "AIRFLOW__MATTING__RETRIES": "0",
            "AIRFLOW__MATTING__SETTLE_SECONDS": "0",
            "AIRFLOW__MATTING__PROVIDERS": "cpu",
            "AIRFLOW__MATTING__UI_CACHE_DIR": str(data / "ui-cache"),
            # SimpleAuthManager, but the viewer "clerk" may not read id_photo_batch
            "AIRFLOW__CORE__AUTH_MANAGER": "restricted_auth.RestrictedAuthManager",
            "PYTHONPATH": str(Path(__file__).parent),
        },
        viewers={"clerk": "clerk-password"},
    )
    live.data = data
    with live:
        yield live


@pytest.fixture(scope="module")
def runs(airflow):
    """One background-removal run (3 photos + 1 broken file) and one ID-photo run (1 pass, 1 refused)."""
    incoming = airflow.data / "incoming"
    incoming.mkdir()
    for name in ("astronaut.jpg", "coffee.jpg", "rocket.jpg"):
        shutil.copy(SAMPLES / name, incoming / name)
    (incoming / "broken.jpg").write_bytes((SAMPLES / "coffee.jpg").read_bytes()[:3000])  # a cut-off upload
    backdate(incoming)  # dropped an hour ago: the broken one is past its upload grace and is quarantined
    airflow.wait_for_dag("matting_scheduled")
    airflow.wait_for_dag("id_photo_batch")
    matting = {"dag_run_id": airflow.unpause_and_get_scheduled_run("matting_scheduled")}
    airflow.api("PATCH", "dags/id_photo_batch", {"is_paused": False})
    portraits = airflow.data / "portraits"
    portraits.mkdir()
    shutil.copy(SAMPLES / "astronaut.jpg", portraits / "astronaut.jpg")
    shutil.copy(SAMPLES / "coffee.jpg", portraits / "cup.jpg")
    conf = {
        "source": str(portraits),
        "destination": str(airflow.data / "id-photos"),
        "spec": "us-passport",
        "background": "white",
        "mode": "lenient",
    }
    idphoto = airflow.api("POST", "dags/id_photo_batch/dagRuns", {"logical_date": None, "conf": conf})
    assert airflow.wait_for_run("matting_scheduled", matting["dag_run_id"], timeout=400) == "success"
    assert airflow.wait_for_run("id_photo_batch", idphoto["dag_run_id"], timeout=400) == "success"
    return {"matting_scheduled": matting["dag_run_id"], "id_photo_batch": idphoto["dag_run_id"]}


def _page_url(airflow, dag_id: str, run_id: str, rest: str = "") -> str:
    return f"{airflow.url}/matting/runs/{dag_id}/{quote(run_id, safe='')}{rest}"


def test_nothing_without_a_logged_in_user(airflow, runs):
    run_page = _page_url(airflow, "matting_scheduled", runs["matting_scheduled"])
    for url in (f"{airflow.url}/matting/", run_page, run_page + "/thumb/0/after.jpg", run_page + "/outputs.zip"):
        r = requests.get(url, timeout=30, allow_redirects=False)
        assert r.status_code == 401, (url, r.status_code)
        forged = requests.get(url, timeout=30, headers={"Authorization": "Bearer not.a.jwt"}, allow_redirects=False)
        assert forged.status_code in (401, 403), (url, forged.status_code)
    browser = requests.get(
        f"{airflow.url}/matting/", timeout=30, headers={"Accept": "text/html"}, allow_redirects=False
    )
    assert browser.status_code == 303 and "/auth/" in browser.headers["location"]  # to Airflow's login


def test_pages_follow_the_auth_managers_decision(airflow, runs):
    """A viewer whom the auth manager denies id_photo_batch: not in the list, no page, no image."""
    clerk = {"Authorization": f"Bearer {airflow.login('clerk', 'clerk-password')}"}
    listing = requests.get(f"{airflow.url}/matting/", headers=clerk, timeout=30)
    assert listing.status_code == 200
    assert runs["matting_scheduled"] in listing.text and runs["id_photo_batch"] not in listing.text
    denied = _page_url(airflow, "id_photo_batch", runs["id_photo_batch"])
    for url in (denied, denied + "/thumb/0/after.jpg"):
        assert requests.get(url, headers=clerk, timeout=30).status_code == 403
    allowed = _page_url(airflow, "matting_scheduled", runs["matting_scheduled"])
    assert requests.get(allowed + "/thumb/0/before.jpg", headers=clerk, timeout=60).status_code == 200


def test_urls_reach_only_the_runs_own_images(airflow, runs):
    auth = {"Authorization": f"Bearer {airflow.token}"}
    base = _page_url(airflow, "matting_scheduled", runs["matting_scheduled"])
    ok = requests.get(base + "/thumb/0/after.jpg", headers=auth, timeout=60)
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/jpeg" and ok.content[:2] == b"\xff\xd8"
    for bad in ("/thumb/4/after.jpg", "/thumb/-1/after.jpg", "/thumb/0/secret.jpg", "/thumb/0/..%2F..%2Fx.jpg"):
        r = requests.get(base + bad, headers=auth, timeout=30)
        assert r.status_code in (404, 422), (bad, r.status_code)
    other = requests.get(_page_url(airflow, "matting_scheduled", "no-such-run"), headers=auth, timeout=30)
    assert other.status_code == 404
    zipped = requests.get(base + "/outputs.zip", headers=auth, timeout=60)
    assert zipped.status_code == 200 and zipped.content[:2] == b"PK"
    run_id = runs["matting_scheduled"]
    links = airflow.api("GET", f"dags/matting_scheduled/dagRuns/{run_id}/taskInstances/archive/links")["extra_links"]
    assert links["Results"] == f"{airflow.url}/matting/runs/matting_scheduled/{quote(run_id, safe='')}"


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    for binary in ("/usr/bin/chromium", "/usr/bin/chromedriver"):
        assert Path(binary).exists(), f"{binary} missing: `make system` (part of `make test`) installs it"
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.set_page_load_timeout(60)
    return driver


def _wait(driver, what: str, script: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.5)
    raise TimeoutError(f"{what}: not seen in {timeout:.0f}s at {driver.current_url}")


ALL_IMAGES_LOADED = (
    "const imgs = Array.from(document.images); imgs.forEach(i => i.loading = 'eager');"
    "return imgs.length && imgs.every(i => i.complete && i.naturalWidth > 0) ? imgs.length : 0"
)


def test_a_person_logs_in_and_sees_the_photos(airflow, runs):
    from selenium.webdriver.common.by import By

    SHOTS.mkdir(parents=True, exist_ok=True)
    driver = _browser()
    try:
        driver.get(f"{airflow.url}/matting/")  # not logged in: Airflow's login page, then back here
        _wait(driver, "the login form", "return document.querySelector('input[type=password]')")
        driver.find_element(By.CSS_SELECTOR, "input[name=username]").send_keys(airflow.user)
        driver.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(airflow.password)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        _wait(driver, "the session cookie", "return document.cookie.includes('_token') || location.pathname")
        time.sleep(2)
        driver.get(f"{airflow.url}/matting/")
        _wait(driver, "the runs list", "return document.body.innerText.includes('Matting results')")
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "matting_scheduled" in text and "id_photo_batch" in text and "files=4 ok=3 failed=1" in text
        driver.save_screenshot(str(SHOTS / "ui_runs.png"))

        driver.find_element(By.PARTIAL_LINK_TEXT, runs["matting_scheduled"][:20]).click()
        count = _wait(driver, "every thumbnail loaded", ALL_IMAGES_LOADED, timeout=120)
        assert count == 8  # before + after for 4 inputs
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "Quarantined / refused (1)" in text and "broken.jpg" in text and "truncated" in text
        driver.save_screenshot(str(SHOTS / "ui_run_matting.png"))

        driver.get(_page_url(airflow, "id_photo_batch", runs["id_photo_batch"]))
        count = _wait(driver, "every thumbnail loaded", ALL_IMAGES_LOADED, timeout=120)
        assert count == 4
        for details in driver.find_elements(By.TAG_NAME, "details"):
            driver.execute_script("arguments[0].open = true", details)
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "head_ratio" in text and "refused" in text
        driver.save_screenshot(str(SHOTS / "ui_run_idphoto.png"))

        driver.get(f"{airflow.url}/providers")  # Admin -> Providers lists the package with its version
        import matting

        _wait(driver, "the providers list", "return document.body.innerText.includes('airflow-matting')")
        assert matting.__version__ in driver.find_element(By.TAG_NAME, "body").text

        driver.get(f"{airflow.url}/plugin/matting")  # the navigation entry: the page inside Airflow's UI
        _wait(driver, "the embedded page", "return document.querySelector('iframe')", timeout=60)
        time.sleep(3)
        driver.save_screenshot(str(SHOTS / "ui_in_airflow.png"))
    finally:
        driver.quit()
