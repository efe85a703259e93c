"""Open a rendered report in headless Chromium: images decode, tables hold the numbers,
nothing from the run executes as script, and the page actually paints."""

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import draw_figures, made_up_accuracy
from dds.reporting.html import provenance, render_report, write_report
from dds.reporting.tables import RESOURCE_COLUMNS

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
EVIL = "<script>alert(1)</script>"
CLASSIFIERS = ["resnet50", EVIL]
SIGMAS = [0.25, 0.5]
EPSILONS = [0.0, 0.005, 0.03]


def made_up_tables():
    return made_up_accuracy(CLASSIFIERS, SIGMAS, EPSILONS, pgd_drop=20, classifier_drop=0, n=32)


@pytest.fixture(scope="module")
def report_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    tables = made_up_tables()
    draw_figures(out, tables, [("clean", torch.rand(4, 3, 16, 16)), ("PGD eps=0.03", torch.rand(4, 1, 16, 16))])
    resources = pd.DataFrame(
        [{"stage": "attack", "jobs": 2, "total_s": 12.5, "max_s": 7.0, "peak_rss_mib": 812.0}], columns=RESOURCE_COLUMNS
    )
    figures = [
        ("Accuracy", out / "acc.png", "resnet50"),
        ("Comparison", out / "cmp.png", EVIL),
        ("Examples", out / "ex.png", "examples"),
    ]
    html = render_report(tables, figures, resources, {"classifiers": CLASSIFIERS}, provenance(out), "dds report")
    write_report(html, out / "report.html")
    return out / "report.html"


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,1600",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield browser
    browser.quit()


@pytest.fixture(scope="module")
def page(driver, report_path):
    driver.get(report_path.as_uri())
    return driver


def test_images_decode(page):
    images = page.execute_script(
        "return Array.from(document.images, i => [i.complete, i.naturalWidth, i.src.slice(0, 22)]);"
    )
    assert len(images) == 3
    for complete, width, src in images:
        assert complete and width > 0
        assert src == "data:image/png;base64,"


def test_tables_hold_expected_cells(page):
    tables = page.execute_script(
        "return Array.from(document.querySelectorAll('table'), t => ({"
        " cls: t.className, caption: t.caption ? t.caption.textContent : '',"
        " rows: Array.from(t.tBodies[0].rows, r => Array.from(r.cells, c => c.textContent.trim()))}));"
    )
    accuracy = [t for t in tables if t["cls"] == "accuracy"]
    norms = [t for t in tables if t["cls"] == "norms"]
    assert [t["caption"] for t in accuracy] == [f"{c} — attack pgd, denoiser ddpm (fp32)" for c in sorted(CLASSIFIERS)]
    expected = [
        [f"{r.sigma:g}", f"{r.epsilon:g}", f"{r.clean_acc:.3f}", f"{r.pgd_acc:.3f}", f"{r.denoised_acc:.3f}", str(r.n)]
        for r in made_up_tables().iloc[: len(SIGMAS) * len(EPSILONS)].itertuples()
    ]
    for table in accuracy:
        assert table["rows"] == expected
    for table in norms:
        assert [r[0] for r in table["rows"]] == ["0", "0.005", "0.03"]
        assert ["0.03", "0.03000", "0.9000", "0.6000", "32", "yes"] in table["rows"]
    resources = next(t for t in tables if t["cls"] == "resources")
    assert resources["rows"] == [["attack", "2", "12.5", "7.0", "812.0"]]
    provenance_rows = dict(next(t for t in tables if t["cls"] == "provenance")["rows"])
    assert provenance_rows["git_commit"] == "unknown"


def test_names_show_as_text_not_script(page):
    assert page.execute_script("return document.scripts.length;") == 0
    assert EVIL in page.execute_script("return document.querySelector('pre').textContent;")
    assert EVIL in page.execute_script("return document.body.innerText;")


def test_screenshot_is_not_blank(page):
    shot = np.asarray(Image.open(io.BytesIO(page.get_screenshot_as_png())).convert("L"), dtype=float)
    assert shot.shape[0] > 100 and shot.shape[1] > 100
    assert shot.std() > 10, f"screenshot looks blank (pixel std {shot.std():.2f})"
