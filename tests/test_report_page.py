"""The report rule's page (dds.pipeline.report.report) on a made-up run with every section: the
order of its sections (the comparison with the paper right after the summary), a navigation
link to each, the files of every table where the links say, alt text on every figure, the
headline's cells, and the re-encoded figures (dds.reporting.images)."""

import base64
import io
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from dds.io import DataFileError
from dds.pipeline.report import report
from dds.reporting.findings import headline, headline_table
from dds.reporting.images import embed
from made_up_results import made_up_config, made_up_results, write_run

REFERENCE = {
    "table": "published.csv",
    "source": "the published table",
    "n": 1000,
    "classifiers": {"resnet": "ResNet"},
    "attack": "pgd",
    "denoiser": "ddpm",
}
SECTIONS = ["accuracy", "calibration", "certification", "blur", "iterations", "adaptive", "transfer", "attention"]
AFTER = ["norms", "models", "resources", "config", "provenance"]


def render(workdir: Path, config: dict) -> str:
    """Write the made-up run in `workdir` and render its report there: the page."""
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        results = made_up_results()
        inputs = write_run(results, config)
        if "reference" in config["report"]:
            published = results.summary.query("classifier == 'resnet' and denoiser == 'ddpm'")
            published.assign(dataset="digits", classifier="ResNet").to_csv("published.csv", index=False)
            inputs["reference"] = "published.csv"
        report(**inputs)
        return Path(inputs["html"]).read_text(encoding="utf-8")
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run")
    config = made_up_config(report={"headline_radius": 0.25, "reference": REFERENCE})
    return workdir, render(workdir, config)


def section_ids(html: str) -> list:
    return re.findall(r'<section id="([^"]+)"', html)


def test_the_comparison_with_the_paper_comes_right_after_the_summary(page):
    _, html = page
    assert section_ids(html) == ["summary", "paper", *SECTIONS, *AFTER]
    assert html.index("<h2>Comparison with the paper</h2>") < html.index("<h2>Accuracy</h2>")


def test_without_a_reference_the_accuracy_follows_the_summary(tmp_path):
    html = render(tmp_path, made_up_config())
    assert section_ids(html) == ["summary", *SECTIONS, *AFTER]


def test_the_navigation_links_every_section_in_page_order(page):
    _, html = page
    nav = html[html.index("<nav>") : html.index("</nav>")]
    assert re.findall(r'href="#([^"]+)"', nav) == section_ids(html)


def test_every_table_links_its_files_where_they_are(page):
    workdir, html = page
    folder = workdir / "results" / "digits"
    links = re.findall(r'<a href="([^"#][^"]*)"', html)
    assert links and [link for link in links if not (folder / link).is_file()] == []
    tables = html.count('<details class="table">')
    assert html.count('<p class="files">Files: ') == tables
    assert "tables/certified/resnet/ddpm.tex" in links and "tables/blur/vit.tex" in links
    assert "../../published.csv" in links  # the reference table, relative to the report too


def test_every_figure_has_alt_text_and_is_embedded(page):
    _, html = page
    images = re.findall(r"<img ([^>]*)>", html)
    assert len(images) == 1 + 1 + 1 + 4 + 3 + 1 + 1 + 1 + 2  # summary, comparison, examples, accuracy, ...
    for attributes in images:
        assert re.search(r'src="data:image/(png|webp);base64,', attributes)
        assert re.search(r'alt="[^"]+"', attributes) and re.search(r'width="\d+"', attributes)
    assert "<script src" not in html and "<link" not in html and 'src="http' not in html


def test_the_summary_shows_the_headline_of_the_tables(page):
    _, html = page
    results = made_up_results()
    config = made_up_config(report={"headline_radius": 0.25})
    found = headline(results.summary, config, results.certified, results.adaptive, results.blur)
    summary = html[html.index('<section id="summary">') : html.index('<section id="paper">')]
    for row in headline_table(found)["rows"]:
        name, *numbers = row
        assert f'<td class="name">{name}</td>' + "".join(f"<td>{c}</td>" for c in numbers) in summary
    for key in ["paper", *SECTIONS]:
        assert f'<a href="#{key}">' in summary  # a sentence per section, linking to it
    assert summary.count("<img ") == 1 and 'alt="Defences compared: ' in summary


def figure_png(path, dpi: int) -> None:
    from dds.reporting.plotting import new_figure

    fig = new_figure((4, 2))
    fig.subplots().plot(np.linspace(0, 1, 50), np.sin(np.linspace(0, 9, 50)))
    fig.savefig(path, format="png", dpi=dpi)


def test_figures_are_re_encoded_smaller_and_shown_at_their_printed_size(tmp_path):
    figure_png(tmp_path / "f.png", 192)
    shown = embed("A figure", tmp_path / "f.png", "its caption")
    assert shown["alt"] == "A figure: its caption" and shown["width"] == 4 * 96 and not shown["wide"]
    mime, data = re.fullmatch(r"data:(image/\w+);base64,(.+)", shown["src"]).groups()
    encoded = base64.b64decode(data)
    assert len(encoded) < (tmp_path / "f.png").stat().st_size
    original = np.asarray(Image.open(tmp_path / "f.png").convert("RGB"), dtype=float)
    decoded = np.asarray(Image.open(io.BytesIO(encoded)).convert("RGB"), dtype=float)
    assert decoded.shape == original.shape and np.abs(decoded - original).mean() < 1.0
    Image.new("RGB", (300, 100), "white").save(tmp_path / "w.png", dpi=(96, 96))
    assert embed("W", tmp_path / "w.png", "c")["wide"] and embed("W", tmp_path / "w.png", "c")["width"] == 300


def test_a_missing_or_foreign_figure_is_a_data_error(tmp_path):
    with pytest.raises(DataFileError, match="gone.png: figure file not found"):
        embed("x", tmp_path / "gone.png", "c")
    (tmp_path / "fake.png").write_text("not a png")
    with pytest.raises(DataFileError, match="fake.png: not a PNG"):
        embed("x", tmp_path / "fake.png", "c")


def test_a_sentence_about_a_section_the_page_lacks_is_refused(tmp_path):
    from dds.reporting.html import render_report
    from dds.reporting.tables import RESOURCE_COLUMNS

    summary = {"table": headline_table(headline(made_up_results().summary, made_up_config())), "sentences": []}
    resources = pd.DataFrame([], columns=RESOURCE_COLUMNS)
    render_report(made_up_results().summary, [], resources, {}, {}, "t", summary=summary)
    summary["sentences"] = [("certification", "certified")]
    with pytest.raises(ValueError, match="sections the report does not have: \\['certification'\\]"):
        render_report(made_up_results().summary, [], resources, {}, {}, "t", summary=summary)


def made_up_purification() -> pd.DataFrame:
    """A purification table as the stage writes it: resnet defended one-shot by ddpm and by 3
    DDIM steps at sigma 0.25, 4 images; the adaptive attack right on 3 and 1 of them (mean over
    draws), BPDA on 4 and 3, one image certified at radius 0.3."""
    from dds.reporting.purification import purification_table

    rows, certificates = [], []
    for denoiser, sampler, k, eta, adaptive, bpda in (
        ("ddpm", "one-shot", 1, None, 3, 4),
        ("ddim3", "ddim", 3, 0.0, 1, 3),
    ):
        for attack, right in (
            ("clean", 4),
            ("unaware", 2),
            ("adaptive-single", adaptive),
            ("adaptive-single-bpda", bpda),
        ):
            for i in range(4):
                rows.append(
                    dict(
                        classifier="resnet",
                        denoiser=denoiser,
                        sigma=0.25,
                        sampler=sampler,
                        reverse_steps=k,
                        eta=eta,
                        t_star=145,
                        epsilon=0.1,
                        steps=5,
                        eot_draws=2,
                        eval_draws=4,
                        attack=attack,
                        idx=i,
                        frac_correct=float(i < right),
                        precision="fp32",
                    )
                )
        for i in range(4):
            certificates.append(
                dict(
                    classifier="resnet",
                    denoiser=denoiser,
                    sigma=0.25,
                    predict=-1 if i else 0,
                    radius=0.3 * (i == 0),
                    correct=int(i == 0),
                )
            )
    return purification_table(pd.DataFrame(rows), pd.DataFrame(certificates), [0.0, 0.25, 0.5])


def test_the_purification_table_its_section_and_sentence(tmp_path):
    from dds import layout
    from dds.io import write_table
    from made_up_results import placeholder_figure

    table = made_up_purification()
    assert list(table["denoiser"]) == ["ddpm", "ddim3"] and list(table["adaptive"]) == [0.75, 0.25]
    assert list(table["bpda"]) == [1.0, 0.75] and list(table["cert_r0.25"]) == [0.25, 0.25]
    assert list(table["cert_r0.5"]) == [0.0, 0.0] and list(table["abstain"]) == [0.75, 0.75]
    config = made_up_config(purification={"enabled": True})
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        inputs = write_run(made_up_results(), config)
        inputs["purification_table"] = layout.fill(layout.PURIFICATION_TABLE, dataset="digits")
        inputs["purification_png"] = layout.fill(layout.PURIFICATION_PNG, dataset="digits")
        write_table(table, inputs["purification_table"])
        placeholder_figure(inputs["purification_png"], "purification")
        report(**inputs)
        html = Path(inputs["html"]).read_text(encoding="utf-8")
    finally:
        os.chdir(cwd)
    assert section_ids(html) == ["summary", *SECTIONS, "purification", *AFTER]
    purification = html[html.index('<section id="purification">') : html.index('<section id="norms">')]
    assert (
        '<th title="sort">adaptive (exact)</th>' in purification
        and '<a href="tables/purification.tex">' in purification
    )
    assert '<td class="name">resnet</td><td>0.250</td><td>ddim3</td><td>DDIM K=3</td><td>145</td>' in purification
    assert (
        "Under the adaptive attack with exact gradients through the whole chain at ε=0.1 and σ=0.25, accuracy is "
        "resnet 0.750 one-shot, 0.250 DDIM K=3 (BPDA: 1.000, 0.750)."
    ) in html
