"""Open rendered reports in headless Chromium as a reader would: images decode and have alt text,
tables hold the numbers and sort by a click on a header, every navigation link lands on its
section, every table links its Parquet and LaTeX files, the summary's numbers are those of the
tables below it and it is above the fold at 1400x900, and nothing from the run executes as script.
DDS_SCREENSHOT=path.png saves that first screen (of a made-up run) to look at."""

import io
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import draw_figures, made_up_accuracy
from dds.reporting.html import provenance, render_report, write_report
from dds.reporting.tables import RESOURCE_COLUMNS
from made_up_results import CLASSIFIERS, made_up_config, made_up_results, write_run

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
EVIL = "<script>alert(1)</script>"
SIGMAS = [0.25, 0.5]
EPSILONS = [0.0, 0.005, 0.03]
WIDTH, HEIGHT = 1400, 900
# every table of a page, as its reader sees it
TABLES_JS = """return Array.from(document.querySelectorAll('details.table'), d => ({
  section: d.closest('section').id, caption: d.querySelector('summary').textContent,
  files: Array.from(d.querySelectorAll('p.files a'), a => [a.getAttribute('href'), a.href]),
  columns: Array.from(d.querySelectorAll('th'), th => th.textContent),
  rows: Array.from(d.querySelector('tbody').rows, r => Array.from(r.cells, c => c.textContent.trim()))}));"""


def made_up_tables():
    return made_up_accuracy(["resnet50", EVIL], SIGMAS, EPSILONS, pgd_drop=20, classifier_drop=0, n=32)


@pytest.fixture(scope="module")
def evil_report(tmp_path_factory):
    """A report whose names and captions try to run a script."""
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
    config = {"classifiers": ["resnet50", EVIL]}
    html = render_report(tables, figures, resources, config, provenance(out), "dds report")
    write_report(html, out / "report.html")
    return out / "report.html"


@pytest.fixture(scope="module")
def run_report(tmp_path_factory):
    """The report rule's page of a made-up run with every section and a published table."""
    from dds.pipeline.report import report

    workdir = tmp_path_factory.mktemp("run")
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        results = made_up_results()
        reference = {"table": "published.csv", "classifiers": {"resnet": "ResNet"}, "attack": "pgd"}
        config = made_up_config(
            report={
                "headline_radius": 0.25,
                "reference": {**reference, "denoiser": "ddpm", "source": "the paper", "n": 500},
            }
        )
        inputs = write_run(results, config)
        published = results.summary.query("classifier == 'resnet' and denoiser == 'ddpm'")
        published.assign(dataset="digits", classifier="ResNet").to_csv("published.csv", index=False)
        report(**inputs, reference="published.csv")
        return workdir / inputs["html"]
    finally:
        os.chdir(cwd)


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
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    # a viewport of exactly WIDTH x HEIGHT: the window's frame comes on top of it
    browser.set_window_size(WIDTH, HEIGHT)
    inner = browser.execute_script("return [window.innerWidth, window.innerHeight];")
    browser.set_window_size(2 * WIDTH - inner[0], 2 * HEIGHT - inner[1])
    yield browser
    browser.quit()


@pytest.fixture
def evil_page(driver, evil_report):
    driver.get(evil_report.as_uri())
    return driver


@pytest.fixture
def page(driver, run_report):
    driver.get(run_report.as_uri())
    return driver


def test_images_decode(evil_page):
    images = evil_page.execute_script(
        "return Array.from(document.images, i => [i.complete, i.naturalWidth, i.src.slice(0, 22), i.alt]);"
    )
    assert len(images) == 3
    for complete, width, src, alt in images:
        assert complete and width > 0 and alt
        assert src in ("data:image/png;base64,", "data:image/webp;base64")


def test_tables_hold_expected_cells(evil_page):
    tables = evil_page.execute_script(TABLES_JS)
    accuracy = [t for t in tables if t["section"] == "accuracy"]
    norms = [t for t in tables if t["section"] == "norms"]
    assert [t["caption"] for t in accuracy] == [
        f"{c} — attack pgd, denoiser ddpm (fp32)" for c in sorted(["resnet50", EVIL])
    ]
    expected = [
        [f"{r.sigma:g}", f"{r.epsilon:g}", f"{r.clean_acc:.3f}", f"{r.pgd_acc:.3f}", f"{r.denoised_acc:.3f}", str(r.n)]
        for r in made_up_tables().iloc[: len(SIGMAS) * len(EPSILONS)].itertuples()
    ]
    for table in accuracy:
        assert table["rows"] == expected
    for table in norms:
        assert [r[0] for r in table["rows"]] == ["0", "0.005", "0.03"]
        assert ["0.03", "0.03000", "0.9000", "0.6000", "32", "yes"] in table["rows"]
    rows = evil_page.execute_script(
        "return Array.from(document.querySelectorAll('table.resources tbody tr, table.provenance tbody tr'),"
        " r => Array.from(r.cells, c => c.textContent.trim()));"
    )
    assert ["attack", "2", "12.5", "7.0", "812.0"] in rows and ["git_commit", "unknown"] in rows


def test_names_show_as_text_not_script(evil_page):
    # one script, the page's own sorting, allowed by its hash in the page's policy
    assert evil_page.execute_script("return document.scripts.length;") == 1
    assert "table.sortable th" in evil_page.execute_script("return document.scripts[0].textContent;")
    assert evil_page.execute_script(
        "return document.querySelector('meta[http-equiv=Content-Security-Policy]').content;"
    ).startswith("default-src 'none'; img-src data:;")
    assert EVIL in evil_page.execute_script("return document.querySelector('pre').textContent;")
    assert EVIL in evil_page.execute_script("return document.body.textContent;")
    # and the policy runs no other inline script, however it got into the page
    injected = "const s = document.createElement('script'); s.textContent = 'window.ran = 1;'; document.body.append(s);"
    assert evil_page.execute_script(injected + " return window.ran;") is None


def test_screenshot_is_not_blank(evil_page):
    shot = np.asarray(Image.open(io.BytesIO(evil_page.get_screenshot_as_png())).convert("L"), dtype=float)
    assert shot.shape[0] > 100 and shot.shape[1] > 100
    assert shot.std() > 10, f"screenshot looks blank (pixel std {shot.std():.2f})"


def test_the_summary_is_above_the_fold(page):
    top = page.execute_script("return document.getElementById('summary').getBoundingClientRect().top;")
    headline = page.execute_script("return document.querySelector('table.headline').getBoundingClientRect().bottom;")
    assert 0 <= top < HEIGHT and headline < HEIGHT, (top, headline)
    if os.environ.get("DDS_SCREENSHOT"):
        page.save_screenshot(os.environ["DDS_SCREENSHOT"])


def test_every_navigation_link_lands_on_its_section(page):
    targets = page.execute_script("return Array.from(document.querySelectorAll('nav a'), a => a.getAttribute('href'));")
    sentences = page.execute_script("return Array.from(document.querySelectorAll('ul.findings a'), a => a.hash);")
    assert targets[:3] == ["#summary", "#paper", "#accuracy"] and "#attention" in targets and "#norms" in targets
    assert set(sentences) <= set(targets) and len(sentences) == 9
    for target in targets:
        assert page.execute_script(f"return document.querySelector('section{target}') !== null;"), target
        page.execute_script(f"document.querySelector('nav a[href=\"{target}\"]').click();")
        top, bottom = page.execute_script(
            f"return [document.querySelector('{target}').getBoundingClientRect().top,"
            " window.scrollY + window.innerHeight - document.documentElement.scrollHeight];"
        )
        assert abs(top) < 2 or abs(bottom) < 2, f"{target} is at {top} px after its link"  # or the page's end


def test_every_table_links_its_parquet_and_latex_files(page, run_report):
    tables = page.execute_script(TABLES_JS)
    assert {t["section"] for t in tables} >= {"paper", "accuracy", "certification", "blur", "adaptive", "norms"}
    for table in tables:
        relative = [href for href, _ in table["files"]]
        assert any(href.endswith(".parquet") for href in relative), table["caption"]
        assert all(not href.startswith(("/", "file:", "http")) for href in relative)
        for href, url in table["files"]:  # each resolves, from the report's folder, to a file of the run
            assert Path(unquote(urlparse(url).path)).is_file() and (run_report.parent / href).is_file()
        if table["section"] in ("accuracy", "certification", "blur", "adaptive"):
            assert any(href.endswith(".tex") for href in relative), table["caption"]


def column(table: dict, name: str) -> list:
    return [row[table["columns"].index(name)] for row in table["rows"]]


def number(text: str) -> float:
    return float(text.split()[0])


def test_clicking_a_header_sorts_its_table(page):
    page.execute_script("document.querySelectorAll('details.table').forEach(d => d.open = true);")

    def click(section: str, caption_start: str, header: str) -> list:
        page.execute_script(
            "const d = Array.from(document.querySelectorAll(`#${arguments[0]} details.table`))"
            ".find(d => d.querySelector('summary').textContent.startsWith(arguments[1]));"
            "Array.from(d.querySelectorAll('th')).find(th => th.textContent === arguments[2]).click();",
            section,
            caption_start,
            header,
        )
        table = next(
            t
            for t in page.execute_script(TABLES_JS)
            if t["section"] == section and t["caption"].startswith(caption_start)
        )
        return column(table, header)

    denoised = click("accuracy", "resnet — attack pgd, denoiser ddpm", "Denoised Acc.")
    assert [number(v) for v in denoised] == sorted(number(v) for v in denoised)
    denoised = click("accuracy", "resnet — attack pgd, denoiser ddpm", "Denoised Acc.")
    assert [number(v) for v in denoised] == sorted((number(v) for v in denoised), reverse=True)
    methods = click("certification", "resnet, denoiser ddpm: certified", "Method")
    assert methods == sorted(methods) and "best sigma" in methods
    assert click("certification", "resnet, denoiser ddpm: certified", "Method") == sorted(methods, reverse=True)
    # missing values (the best sigma's empty cell, the cascade's dash) stay last both ways
    for reverse in (False, True):
        predict = click("certification", "resnet, denoiser ddpm: certified", "PREDICT acc.")
        assert set(predict[-2:]) == {"", "—"} and predict[:-2] == sorted(predict[:-2], key=float, reverse=reverse)


def test_the_summary_numbers_are_those_of_the_tables_below(page):
    headline = page.execute_script(
        "const t = document.querySelector('table.headline');"
        " return [Array.from(t.tHead.rows[0].cells, c => c.textContent),"
        " Array.from(t.tBodies[0].rows, r => Array.from(r.cells, c => c.textContent))];"
    )
    columns, rows = headline
    summary = {row[0]: dict(zip(columns, row)) for row in rows}
    assert list(summary) == CLASSIFIERS
    tables = page.execute_script(TABLES_JS)

    def find(section, caption):
        return next(t for t in tables if t["section"] == section and t["caption"].startswith(caption))

    def best(values_and_sigmas):
        value, sigma = max(values_and_sigmas, key=lambda vs: (vs[0], -vs[1]))
        return f"{value:.3f} (σ={sigma:g})"

    for name in CLASSIFIERS:
        mine = summary[name]
        accuracy = find("accuracy", f"{name} — attack pgd, denoiser ddpm")
        at = [dict(zip(accuracy["columns"], r)) for r in accuracy["rows"] if r[1] == "0.1"]
        assert mine["Clean"] == at[0]["Clean Acc."] and mine["PGD ε=0.1"] == at[0]["PGD Acc."]
        assert mine["Denoised (ddpm) ε=0.1, best σ"] == best((float(r["Denoised Acc."]), float(r["Sigma"])) for r in at)
        certified = find("certification", f"{name}, denoiser ddpm: certified accuracy on the clean sample")
        by_method = {r[0]: dict(zip(certified["columns"], r)) for r in certified["rows"]}
        singles = [(float(r["r=0.25"]), float(m.split("=")[1])) for m, r in by_method.items() if m.startswith("sigma=")]
        assert mine["Certified (ddpm) r=0.25, best σ"] == best(singles)
        assert mine["Multi-scale r=0.25"] == by_method["multi-scale"]["r=0.25"]
        blur = find("blur", f"{name}: blur majority")
        attacked = next(r for r in blur["rows"] if r[0] == "attack pgd" and r[2] == "0.1")
        assert mine["Blur majority ε=0.1"] == attacked[blur["columns"].index("Acc_Maj")]
        adaptive = find("adaptive", f"{name}, denoiser ddpm")
        strongest = {}
        for r in adaptive["rows"]:
            r = dict(zip(adaptive["columns"], r))
            if r["Epsilon"] == "0.1" and r["Attack"] in ("adaptive (single target)", "adaptive (smoothed target)"):
                sigma = float(r["Sigma"])
                strongest[sigma] = min(strongest.get(sigma, 1.0), float(r["mean over draws"]))
        assert mine["Adaptive (ddpm) ε=0.1, best σ"] == best((v, s) for s, v in strongest.items())


def test_every_figure_has_alt_text(page):
    images = page.execute_script("return Array.from(document.images, i => [i.naturalWidth, i.alt, i.width]);")
    assert len(images) == 15
    for natural, alt, shown in images:
        assert natural > 0 and alt.strip() and 0 < shown <= natural
