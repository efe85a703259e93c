"""Figures (dds.reporting.figures, the attention grid of dds.reporting.attack_figures) and the HTML
report (dds.reporting.html): what is drawn, what is embedded and escaped, and the errors."""

import base64
import io
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from conftest import draw_figures, made_up_accuracy
from dds.io import DataFileError
from dds.reporting.attack_figures import attention_figure
from dds.reporting.figures import accuracy_figure, examples_figure
from dds.reporting.html import provenance, render_report, write_report
from dds.reporting.tables import RESOURCE_COLUMNS, stage_resources

PNG = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert(1)</script>"
BENCHMARK_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def made_up_tables(classifiers=("resnet50", EVIL), sigmas=(0.25, 0.5), epsilons=(0.0, 0.01, 0.05)):
    return made_up_accuracy(classifiers, sigmas, epsilons)


def made_up_resources():
    return pd.DataFrame(
        [
            {"stage": "attack", "jobs": 4, "total_s": 120.5, "max_s": 40.25, "peak_rss_mib": 2048.0},
            {"stage": EVIL, "jobs": 1, "total_s": 1.0, "max_s": 1.0, "peak_rss_mib": float("nan")},
        ],
        columns=RESOURCE_COLUMNS,
    )


@pytest.fixture(scope="module")
def figure_files(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    draw_figures(out, made_up_tables(), [("clean", torch.rand(3, 3, 8, 8)), ("PGD eps=0.2", torch.rand(2, 1, 8, 8))])
    return out


def test_figures_are_written(figure_files):
    for name in ("acc", "cmp"):
        assert (figure_files / f"{name}.png").read_bytes().startswith(PNG)
        assert b"<svg" in (figure_files / f"{name}.svg").read_bytes()[:1000]
    assert (figure_files / "ex.png").read_bytes().startswith(PNG)
    assert not list(figure_files.glob(".*.tmp"))  # atomic writes leave no temporary files


def test_defence_panels_draw_one_line_per_defence_per_classifier():
    from dds.reporting.plotting import defence_panels

    rows = [
        {"classifier": c, "defence": d, "epsilon": e, "accuracy": a + e}
        for c in ("vit", "resnet")
        for d, a in (("sigma=0.25", 0.5), ("none", 0.1))
        for e in (0.0, 0.1)
    ]
    rows.append({"classifier": "vit", "defence": "none", "epsilon": 0.1, "accuracy": 0.4})  # a second row: mean
    fig, panels = defence_panels(pd.DataFrame(rows), "epsilon", "tab10", none_color="black")
    assert [name for _, name, _ in panels] == ["resnet", "vit"]
    for ax, name, panel_rows in panels:
        assert set(panel_rows["classifier"]) == {name}
        none, denoised = ax.get_lines()  # "none" first, dashed and in the colour asked for
        assert none.get_label() == "none" and none.get_linestyle() == "--" and none.get_color() == "black"
        assert denoised.get_label() == "sigma=0.25" and denoised.get_linestyle() == "-"
        assert list(denoised.get_ydata()) == pytest.approx([0.5, 0.6])
    assert list(panels[1][0].get_lines()[0].get_ydata()) == pytest.approx([0.1, 0.3])  # (0.2 + 0.4) / 2


def test_accuracy_figure_wants_one_model(tmp_path):
    with pytest.raises(ValueError, match="one \\(classifier, attack, denoiser\\) per figure"):
        accuracy_figure(made_up_tables(), tmp_path / "a.png", tmp_path / "a.svg")


def test_examples_figure_checks_images(tmp_path):
    with pytest.raises(ValueError, match="'bad'.*outside \\[0, 1\\]"):
        examples_figure([("bad", torch.full((1, 3, 4, 4), 2.0))], tmp_path / "ex.png")
    with pytest.raises(ValueError, match="'four'.*shape"):
        examples_figure([("four", torch.rand(1, 4, 4, 4))], tmp_path / "ex.png")
    assert not (tmp_path / "ex.png").exists()


def render(figure_files, config=None, prov=None):
    figures = [
        ("Accuracy", figure_files / "acc.png", "Accuracy of resnet50"),
        ("Comparison", figure_files / "cmp.png", f"caption {EVIL}"),
        ("Examples", figure_files / "ex.png", "Example images"),
    ]
    return render_report(
        made_up_tables(),
        figures,
        made_up_resources(),
        config or {"classifiers": [EVIL], "seed": 1},
        prov or {"git_commit": "abc"},
        f"dds {EVIL}",
        models=[{"name": EVIL, "kind": "classifier", "metrics": {"heldout_accuracy": 0.98765, "epochs": 8}}],
    )


def test_report_escapes_names_config_and_captions(figure_files):
    html = render(figure_files)
    assert html.count("<script") == 1 and EVIL not in html  # only the page's own sorting script
    escaped = "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert f"<title>dds {escaped}</title>" in html
    assert f"<summary>{escaped} — attack pgd, denoiser ddpm (fp32)</summary>" in html  # accuracy table
    assert f"<summary>{escaped} — attack pgd (L∞)</summary>" in html  # norms table
    assert f"- {escaped}" in html  # config YAML
    assert f'<td class="name">{escaped}</td>' in html  # resources
    assert f"caption {escaped}" in html


def test_report_embeds_every_figure(figure_files):
    html = render(figure_files)
    embedded = re.findall(r'<img src="data:image/(?:png|webp);base64,([A-Za-z0-9+/=]+)"', html)
    assert len(embedded) == 3
    for data, name in zip(embedded, ("acc.png", "cmp.png", "ex.png")):  # re-encoded: the same picture
        shown = Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB")
        original = Image.open(figure_files / name).convert("RGB")
        assert shown.size == original.size
        assert np.abs(np.asarray(shown, float) - np.asarray(original, float)).mean() < 2
    assert 'src="http' not in html and "<link" not in html  # nothing fetched from elsewhere


def test_report_tables_content(figure_files):
    html = render(figure_files)
    accuracy = html[html.index('<section id="accuracy">') : html.index('<section id="norms">')]
    norms = html[html.index('<section id="norms">') : html.index('<section id="models">')]
    assert accuracy.count('<table class="sortable">') == 2 and norms.count('<table class="sortable">') == 2
    assert '<td class="name">0.25</td><td>0.01</td><td>0.850</td>' in accuracy
    assert '<td class="name">0.05</td><td>0.05000</td><td>1.5000</td><td>1.0000</td><td>64</td>' in norms
    assert accuracy.count('<a href="tables/resnet50/pgd/ddpm.parquet">') == 1
    assert accuracy.count('<a href="tables/resnet50/pgd/ddpm.tex">') == 1
    assert "<td>120.5</td>" in html and "<td>2048.0</td>" in html
    assert "<td>—</td>" in html  # NaN peak memory shown as a dash


def test_report_flags_norm_above_epsilon(figure_files):
    tables = made_up_tables()
    tables.loc[tables["epsilon"] == 0.05, "linf_max"] = 0.06
    html = render_report(tables, [], made_up_resources(), {}, {}, "t")
    assert html.count('<td class="bad">no</td>') == 2  # one per classifier


def test_report_checks_l2_attacks_in_l2(figure_files):
    tables = made_up_tables()  # l2_max = 30 * epsilon: far outside an L2 ball of radius epsilon
    config = {"attacks": {"pgd": {"method": "pgd_l2"}}}
    html = render_report(tables, [], made_up_resources(), config, {}, "t")
    assert "attack pgd (L2)" in html
    assert html.count('<td class="bad">no</td>') == 2 * (tables["epsilon"].nunique() - 1)


def test_report_missing_figure_and_columns(figure_files, tmp_path):
    with pytest.raises(DataFileError, match="gone.png: figure file not found"):
        render_report(made_up_tables(), [("x", tmp_path / "gone.png", "c")], made_up_resources(), {}, {}, "t")
    (tmp_path / "fake.png").write_text("not a png")
    with pytest.raises(DataFileError, match="fake.png: not a PNG"):
        render_report(made_up_tables(), [("x", tmp_path / "fake.png", "c")], made_up_resources(), {}, {}, "t")
    with pytest.raises(ValueError, match="missing column\\(s\\) \\['linf_max'\\]"):
        render_report(made_up_tables().drop(columns="linf_max"), [], made_up_resources(), {}, {}, "t")


def test_provenance_outside_git(tmp_path):
    prov = provenance(tmp_path)
    assert prov["git_commit"] == "unknown" and prov["git_dirty"] is None
    assert set(prov["packages"]) >= {"torch", "pandas", "jinja2", "snakemake"}
    assert prov["packages"]["pandas"] == pd.__version__
    assert prov["rendered_at"].endswith("+00:00")


def test_write_report_and_provenance_rendered(figure_files, tmp_path):
    html = render(figure_files, prov=provenance(tmp_path))
    write_report(html, tmp_path / "out" / "report.html")
    assert (tmp_path / "out" / "report.html").read_text(encoding="utf-8") == html
    assert '<td class="name">git_commit</td><td class="name">unknown</td>' in html
    assert f'<td class="name">packages: pandas</td><td class="name">{pd.__version__}</td>' in html


def benchmark(path, *rows):
    """A benchmark file of a job writing `path`'s name, where the workflow keeps them."""
    path = path.parent / "results" / "digits" / "benchmarks" / path.name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(BENCHMARK_HEADER + "".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def test_stage_resources(tmp_path):
    attack = [
        benchmark(tmp_path / "a0.tsv", (10.5, "0:00:10", 512.25, 900, 400, 420, 1.0, 2.0, 95.0, 10.0)),
        benchmark(tmp_path / "a1.tsv", (20.0, "0:00:20", 1024.0, 1900, 900, 920, 1.0, 2.0, 95.0, 19.0)),
    ]
    tiny = [benchmark(tmp_path / "s0.tsv", (0.2, "0:00:00", "NA", "NA", "NA", "NA", "NA", "NA", "NA", "NA"))]
    repeated = [
        benchmark(
            tmp_path / "r0.tsv", (3.0, "0:00:03", 10, 1, 1, 1, 0, 0, 1, 1), (5.0, "0:00:05", 30, 1, 1, 1, 0, 0, 1, 1)
        )
    ]
    df = stage_resources({"attack": attack, "sample": tiny, "denoise": repeated})
    assert list(df.columns) == RESOURCE_COLUMNS
    assert df["stage"].tolist() == ["attack", "sample", "denoise"]
    assert df["jobs"].tolist() == [2, 1, 1]
    assert df["total_s"].tolist() == [30.5, 0.2, 4.0]
    assert df["max_s"].tolist() == [20.0, 0.2, 4.0]
    assert df["peak_rss_mib"][0] == 1024.0 and math.isnan(df["peak_rss_mib"][1]) and df["peak_rss_mib"][2] == 30.0


def test_a_job_the_job_server_ran_counts_its_workers_memory(tmp_path):
    """Snakemake measured the script waiting for the worker; the worker's usage record, beside
    the job's log, holds the job's memory."""
    served = benchmark(tmp_path / "a0.tsv", (10.5, "0:00:10", 25.0, 90, 20, 20, 1.0, 2.0, 5.0, 0.3))
    record = tmp_path / "logs" / "digits" / "a0.log.usage.json"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"max_rss_mib": 812.5, "cpu_s": 9.8}))
    direct = benchmark(tmp_path / "a1.tsv", (20.0, "0:00:20", 700.0, 1900, 900, 920, 1.0, 2.0, 95.0, 19.0))
    df = stage_resources({"attack": [served, direct]})
    assert df["peak_rss_mib"].tolist() == [812.5] and df["total_s"].tolist() == [30.5]
    record.write_text("{")
    with pytest.raises(DataFileError, match=r"a0\.log\.usage\.json: not a usage record"):
        stage_resources({"attack": [served]})


@pytest.mark.parametrize(
    "content, message",
    [
        (None, "benchmark file not found"),
        ("", "not a Snakemake benchmark TSV"),
        (BENCHMARK_HEADER, "benchmark file has a header but no data row"),
        ("seconds\tmemory\n1\t2\n", r"benchmark file lacks column\(s\) \['s', 'max_rss'\]"),
        (BENCHMARK_HEADER + "fast\t0:00:01\t1\t1\t1\t1\t1\t1\t1\t1\n", "column 's' holds the non-numeric value 'fast'"),
    ],
)
def test_stage_resources_bad_file(tmp_path, content, message):
    path = tmp_path / "results" / "digits" / "benchmarks" / "bench.tsv"
    path.parent.mkdir(parents=True)
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataFileError, match=rf"bench\.tsv: {message}"):
        stage_resources({"attack": [path]})


def test_report_lists_each_models_training_record(figure_files):
    html = render(figure_files)
    assert 'id="models"' in html
    assert "heldout_accuracy: 0.9877; epochs: 8" in html


def test_report_renders_further_sections_escaped(figure_files):
    from dds.reporting.blocks import make_section, make_table

    figures = [("Accuracy", figure_files / "acc.png", "c")]
    table = make_table("resnet", ["Method", "r=0"], [["sigma=0.25", "0.950"]], [f"{EVIL}.parquet"])
    section = make_section("certification", "Certification", f"about {EVIL}", [table], [("Cert", figures[0][1], EVIL)])
    html = render_report(made_up_tables(), figures, made_up_resources(), {}, {}, "t", sections=[section])
    assert '<section id="certification">\n<h2>Certification</h2>' in html
    assert '<a href="#certification">Certification</a>' in html  # in the navigation
    assert '<td class="name">sigma=0.25</td><td>0.950</td>' in html
    assert html.count("<script") == 1 and EVIL not in html  # only the page's own sorting script


def test_report_figures_are_found_by_model_names_with_hyphens():
    from dds import layout
    from dds.reporting.contents import by_keys

    config = {
        "classifiers": {"resnet50": {}, "resnet50-cbam": {}},
        "denoisers": {"improved-diffusion": {}},
        "attacks": {"pgd": {}},
    }
    pngs = [
        layout.fill(layout.ACCURACY_PNG, dataset="d", classifier=c, attack="pgd", denoiser="improved-diffusion")
        for c in config["classifiers"]
    ]
    assert list(by_keys(pngs, layout.ACCURACY_PNG, config, "classifier", "attack", "denoiser")) == [
        ("resnet50", "pgd", "improved-diffusion"),
        ("resnet50-cbam", "pgd", "improved-diffusion"),
    ]


def test_attention_figure(tmp_path):
    gen = torch.Generator().manual_seed(0)
    images, adversarial = torch.rand(3, 1, 16, 16, generator=gen), torch.rand(3, 1, 16, 16, generator=gen)
    columns = [
        ("clean", images, torch.rand(3, 16, 16, generator=gen)),
        ("PGD ε=0.1", adversarial, torch.rand(3, 16, 16, generator=gen)),
    ]
    attention_figure(columns, tmp_path / "attention.png", tmp_path / "attention.svg")
    assert (tmp_path / "attention.png").stat().st_size > 0 and (tmp_path / "attention.svg").stat().st_size > 0
    with pytest.raises(ValueError, match="'PGD ε=0.1'"):
        attention_figure([columns[0], ("PGD ε=0.1", adversarial[:2], columns[1][2][:2])], tmp_path / "bad.png")
