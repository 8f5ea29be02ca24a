"""Live: the results pages as a person sees them. A real Airflow (started by the test) runs the
background-removal DAG on photos dropped in its folder (one of them broken), an ID-photo batch, and
a strict ID-photo batch whose two photos are held for review; then Debian's headless Chromium,
driven through chromium-driver, logs in on Airflow's own login page, opens the plugin's pages from
the navigation entry and as the "Results" tab of a DAG run (light and dark theme), opens one photo's
full-size comparison, and reviews the held photos through Airflow's own Required Actions form
(approves one, rejects the other with a note); it checks every image loaded and saves screenshots
(``out/screenshots/``; docs/results-ui.md and docs/id-photos.md show copies from ``docs/img/``).

Also through plain HTTP: no page and no image without a logged-in user, a forged token is refused,
a URL cannot reach a file outside the run (image URLs carry an index, nothing else), and the
operators' "Results" extra link points at the run's page.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from conftest import DATA, ROOT, SAMPLES, backdate
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
            # the ID-photo form may name any folder under the data folder; the other DAGs keep their own
            "AIRFLOW_VAR_MATTING_ALLOWED_LOCATIONS": json.dumps({"id_photo_batch": [str(data)]}),
        },
        viewers={"clerk": "clerk-password", "shopper": "shopper-password"},
        roles={"shopper": "user"},  # Airflow's User role: may edit the runs' XComs through the REST API
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
    held = airflow.data / "portraits-held"  # strict Schengen: both smiling portraits are held
    held.mkdir()
    shutil.copy(SAMPLES / "astronaut.jpg", held / "astronaut.jpg")
    shutil.copy(DATA / "portrait_tilted_8deg.jpg", held / "tilted.jpg")
    strict = {"source": str(held), "destination": str(airflow.data / "id-held"), "spec": "schengen"}
    review = airflow.api("POST", "dags/id_photo_batch/dagRuns", {"logical_date": None, "conf": strict})
    assert airflow.wait_for_run("matting_scheduled", matting["dag_run_id"], timeout=400) == "success"
    assert airflow.wait_for_run("id_photo_batch", idphoto["dag_run_id"], timeout=400) == "success"
    airflow.wait_until_parked("id_photo_batch", review["dag_run_id"], "review_held_photos")
    return {
        "matting_scheduled": matting["dag_run_id"],
        "id_photo_batch": idphoto["dag_run_id"],
        "review": review["dag_run_id"],
    }


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


def _patched_xcom(airflow, user_token: str, dag_id: str, run_id: str, task_id: str, change: dict):
    """A user who may edit XComs points the run's results XCom elsewhere (through the public REST API)."""
    path = f"{airflow.url}/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}"
    path += "/xcomEntries/return_value"
    headers = {"Authorization": f"Bearer {user_token}"}
    original = requests.get(path, headers=headers, timeout=30).json()["value"]
    r = requests.patch(path, headers=headers, json={"value": {**original, **change}, "map_index": -1}, timeout=30)
    assert r.status_code == 200, r.text  # the User role may do this: the pages must not believe it
    return path, original


def test_results_pages_trust_no_xcom(airflow, runs):
    """Issue #35: a User-role user rewrites a run's XCom through the REST API to point its results page
    at another run's folder, another DAG's destination or the server's own files: every page, image
    (cached ones too) and zip answers 403/404 and serves no byte of them; restored, it is served again."""
    shopper = airflow.login("shopper", "shopper-password")
    auth = {"Authorization": f"Bearer {shopper}"}
    review_page = _page_url(airflow, "id_photo_batch", runs["review"])
    # the strict run's gallery, as a reader of it sees it: its thumbnails are cached under their keys now
    gallery = requests.get(review_page, headers=auth, timeout=60).text
    cached = re.findall(r"thumb/0/after\.jpg\?v=([0-9a-f]{16})", gallery)
    assert cached and requests.get(f"{review_page}/thumb/0/after.jpg?v={cached[0]}", headers=auth, timeout=60).ok
    review_xcom = airflow.api(
        "GET",
        f"dags/id_photo_batch/dagRuns/{quote(runs['review'], safe='')}/taskInstances/make_id_photos"
        "/xcomEntries/return_value",
    )["value"]
    elsewhere = {k: review_xcom[k] for k in ("destination", "run_prefix")}
    ids = airflow.data / "id-photos"
    cases = [
        # same DAG, a place it may read: the strict run's folder under the lenient run's URL -> not its manifest
        ("id_photo_batch", runs["id_photo_batch"], "make_id_photos", elsewhere, 404),
        # another DAG's destination (the ID photos) under the background-removal run's URL
        ("matting_scheduled", runs["matting_scheduled"], "archive", {"destination": str(ids)}, 403),
        # the api-server's own files; a connection the DAG does not use
        ("matting_scheduled", runs["matting_scheduled"], "archive", {"destination": "/", "run_prefix": "etc"}, 403),
        ("matting_scheduled", runs["matting_scheduled"], "archive", {"destination_conn_id": "aws_default"}, 403),
    ]
    for dag_id, run_id, task_id, change, status in cases:
        page = _page_url(airflow, dag_id, run_id)
        assert requests.get(page + "/thumb/0/after.jpg", headers=auth, timeout=60).status_code == 200
        path, original = _patched_xcom(airflow, shopper, dag_id, run_id, task_id, change)
        try:
            urls = [page, page + "/photo/0", page + "/outputs.zip"]
            urls += [f"{page}/thumb/0/{kind}.jpg{v}" for kind in ("before", "after") for v in ("", f"?v={cached[0]}")]
            for url in urls:
                r = requests.get(url, headers=auth, timeout=60)
                assert r.status_code == status, (change, url, r.status_code, r.text[:300])
                assert r.content[:2] not in (b"\xff\xd8", b"PK"), url  # no image, no zip
        finally:
            r = requests.patch(path, headers=auth, json={"value": original, "map_index": -1}, timeout=30)
            assert r.status_code == 200, r.text
        assert requests.get(page + "/thumb/0/after.jpg", headers=auth, timeout=60).status_code == 200
    log = airflow.log_of("api-server")
    assert "results of matting_scheduled" in log and "refused" in log  # what was tried is in the server's log


def _logged_in_browser(airflow):
    """Chromium logged in through Airflow's own login page (reached by opening /matting/ without a
    session), left on the runs list."""
    from selenium.webdriver.common.by import By

    SHOTS.mkdir(parents=True, exist_ok=True)  # every test that logs in saves screenshots
    driver = _browser()
    driver.get(f"{airflow.url}/matting/")  # not logged in: Airflow's login page, then back here
    _wait(driver, "the login form", "return document.querySelector('input[type=password]')")
    driver.find_element(By.CSS_SELECTOR, "input[name=username]").send_keys(airflow.user)
    driver.find_element(By.CSS_SELECTOR, "input[type=password]").send_keys(airflow.password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    _wait(driver, "the session cookie", "return document.cookie.includes('_token') || location.pathname")
    time.sleep(2)
    driver.get(f"{airflow.url}/matting/")
    _wait(driver, "the runs list", "return document.body.innerText.includes('Matting results')")
    return driver


def test_results_tab_on_the_runs_own_page_in_both_themes(airflow, runs):
    """The DAG run page has a Results tab beside Task Instances; it follows Airflow's theme."""
    from selenium.webdriver.common.by import By

    run_id = runs["matting_scheduled"]
    driver = _logged_in_browser(airflow)
    try:
        for theme in ("light", "dark"):
            driver.execute_script(f"localStorage.setItem('theme', '{theme}')")  # Airflow's own switch stores it here
            driver.get(f"{airflow.url}/dags/matting_scheduled/runs/{quote(run_id, safe='')}")
            tab = _wait(
                driver,
                "the Results tab",
                "return Array.from(document.querySelectorAll('a')).find(a => a.innerText.trim() == 'Results')",
            )
            assert tab.get_attribute("href").endswith("/plugin/matting_results")
            tab.click()
            frame = _wait(driver, "the embedded results", "return document.querySelector('iframe')")
            assert frame.get_attribute("src") == _page_url(airflow, "matting_scheduled", run_id)
            driver.switch_to.frame(frame)
            assert _wait(driver, "every thumbnail loaded", ALL_IMAGES_LOADED, timeout=120) == 8
            assert driver.execute_script("return document.documentElement.dataset.theme") == theme
            background = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
            assert (background == "rgb(255, 255, 255)") == (theme == "light"), background
            driver.switch_to.default_content()
            driver.save_screenshot(str(SHOTS / f"ui_tab_{theme}.png"))
        # the task instance page has the tab too
        driver.get(f"{airflow.url}/dags/matting_scheduled/runs/{quote(run_id, safe='')}/tasks/archive")
        _wait(
            driver,
            "the task's Results tab",
            "return Array.from(document.querySelectorAll('a')).find(a => a.innerText.trim() == 'Results'"
            " && a.href.endsWith('/plugin/matting_results_ti'))",
        )
        # filter, then one photo full size
        driver.execute_script("localStorage.setItem('theme', 'light')")
        driver.get(_page_url(airflow, "matting_scheduled", run_id, "?show=failed"))
        assert _wait(driver, "the failed photo", ALL_IMAGES_LOADED, timeout=60) == 2
        driver.find_element(By.PARTIAL_LINK_TEXT, "broken.jpg").click()
        _wait(driver, "the comparison page", "return location.pathname.includes('/photo/')")
        driver.get(_page_url(airflow, "matting_scheduled", run_id, "/photo/0"))
        assert _wait(driver, "both full-size images", ALL_IMAGES_LOADED, timeout=120) == 2
        sizes = driver.execute_script("return Array.from(document.images).map(i => i.naturalWidth)")
        assert min(sizes) > 256, sizes  # bigger than a thumbnail
        driver.save_screenshot(str(SHOTS / "ui_photo.png"))
    finally:
        driver.quit()


def test_held_photos_reviewed_through_the_real_form(airflow, runs):
    """The reviewer sees both held photos in Airflow's Required Actions form (served by the plugin
    from a folder: no presigned URL), approves one and rejects the other with a note."""
    import json

    from selenium.webdriver.common.by import By

    run_id = runs["review"]
    driver = _logged_in_browser(airflow)
    try:
        driver.set_window_size(1400, 1800)
        form = (
            f"{airflow.url}/dags/id_photo_batch/runs/{quote(run_id, safe='')}/tasks/review_held_photos/required_actions"
        )
        driver.get(form)
        _wait(driver, "the form", "return document.querySelector('input[name=element_note]')")
        assert _wait(driver, "both held photos", ALL_IMAGES_LOADED, timeout=120) == 2
        srcs = driver.execute_script("return Array.from(document.images).map(i => i.src)")
        assert all(f"/matting/runs/id_photo_batch/{quote(run_id, safe='')}/thumb/" in u for u in srcs), srcs
        assert "X-Amz" not in driver.page_source and "astronaut.jpg" in driver.page_source
        driver.save_screenshot(str(SHOTS / "ui_review_form.png"))
        box = driver.find_element(By.CSS_SELECTOR, "input[role=combobox]")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", box)
        driver.find_element(
            By.CSS_SELECTOR, "[aria-label='Remove Decide later (keep them in review/)'] [role=button]"
        ).click()
        box.click()
        _wait(driver, "the options", "return document.querySelector('[role=option]')")
        driver.find_element(By.XPATH, "//*[@role='option'][normalize-space()='astronaut.jpg']").click()
        driver.find_element(By.CSS_SELECTOR, "input[name=element_note]").send_keys("smiling: please retake")
        chosen = [
            e.get_attribute("value")
            for e in driver.find_elements(By.CSS_SELECTOR, "input[name=element_chosen_options]")
        ]
        assert chosen == ["astronaut.jpg"]
        driver.find_element(By.XPATH, "//button[normalize-space()='Respond']").click()
        assert airflow.wait_for_run("id_photo_batch", run_id, timeout=300) == "success"
        run_dir = next((airflow.data / "id-held").glob("id_photo_batch/*/*/*/*"))
        assert sorted(p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*.jpg")) == [
            "astronaut.jpg",
            "rejected/tilted.jpg",
        ]
        decision = json.loads((run_dir / "rejected" / "tilted.review.json").read_text())
        assert decision["note"] == "smiling: please retake" and decision["reviewer"] == airflow.user
        # the results page shows the decisions
        driver.get(_page_url(airflow, "id_photo_batch", run_id))
        assert _wait(driver, "every thumbnail loaded", ALL_IMAGES_LOADED, timeout=120) == 4
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "files=2 ok=1 refused=1" in text.replace("  ", " "), text[:500]
    finally:
        driver.quit()


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

    driver = _logged_in_browser(airflow)
    try:
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
