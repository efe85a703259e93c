"""Tables, figures and report sections of attack strength: the adaptive attack beside the
unaware one, the transfer matrix, accuracy against PGD iterations (on made-up results)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dds import layout
from dds.io import write_table
from dds.pipeline.adaptive import adaptive_table as adaptive_table_stage
from dds.pipeline.iterations import iterations_table
from dds.pipeline.transfer import transfer_table
from dds.reporting.attack_tables import adaptive_table, adaptive_wide, transfer_matrix
from dds.reporting.latex import adaptive_latex
from dds.reporting.sections import adaptive_section, iterations_section, transfer_section

PNG = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert(1)</script>"


def made_up_adaptive(classifier="resnet", sigma=0.25, n=10):
    """Per-image rows as the adaptive stage writes them: accuracy falls from clean to unaware
    to adaptive; every kind's first `k` images are correct."""
    correct = {("clean", 0.0): 9, ("unaware", 0.1): 6, ("adaptive-single", 0.1): 3, ("adaptive-smoothed", 0.1): 4}
    frames = []
    for (kind, eps), k in correct.items():
        ok = np.arange(n) < k
        frames.append(
            pd.DataFrame(
                {
                    "idx": np.arange(n),
                    "label": np.zeros(n, dtype=np.int64),
                    "epsilon": eps,
                    "attack": kind,
                    "pred_single": np.where(ok, 0, 1),
                    "correct_single": ok,
                    "pred_smoothed": np.where(ok, 0, -1),
                    "correct_smoothed": ok,
                    "linf": np.full(n, eps),
                    "l2": np.full(n, 2 * eps),
                }
            )
        )
    return pd.concat(frames, ignore_index=True).assign(
        classifier=classifier, denoiser="ddpm", attack_name="pgd", sigma=sigma, precision="fp32"
    )


def test_adaptive_table_accuracies_and_order():
    rows = made_up_adaptive()
    table = adaptive_table(rows.sample(frac=1, random_state=0))  # input order does not matter
    assert list(table["attack"]) == ["clean", "unaware", "adaptive-single", "adaptive-smoothed"]
    assert list(table["acc_single"]) == [0.9, 0.6, 0.3, 0.4]
    assert list(table["abstain_rate"]) == pytest.approx([0.1, 0.4, 0.7, 0.6])
    assert list(table["n"]) == [10] * 4
    assert table.loc[1, "linf_max"] == pytest.approx(0.1) and table.loc[1, "l2_mean"] == pytest.approx(0.2)
    wide = adaptive_wide(table[table["attack"] != "clean"], "acc_single")
    assert list(wide.columns[-3:]) == ["unaware", "adaptive-single", "adaptive-smoothed"]
    assert wide.iloc[0]["adaptive-single"] == pytest.approx(0.3)


def test_adaptive_latex_compiles(compile_latex):
    table = adaptive_table(pd.concat([made_up_adaptive("res_net"), made_up_adaptive("vit", 0.5)]))
    tex = adaptive_latex(table.assign(precision="fp32"), "Adaptive & unaware", "tab:adaptive")
    assert r"res\_net & 0.25 & 0.1 & 0.600 & 0.300 & 0.400 \\" in tex
    assert "Adaptive \\& unaware" in tex
    compile_latex(tex)


def made_up_transfer():
    rows = []
    for source in ("a", "b"):
        for target in ("a", "b"):
            for eps in (0.0, 0.1):
                for defence in ("none", "sigma=0.25"):
                    acc = 0.9 if eps == 0 else (0.1 if source == target else 0.5) + (0.3 if defence != "none" else 0)
                    rows.append(
                        {
                            "attack": "pgd",
                            "denoiser": "ddpm",
                            "source": source,
                            "target": target,
                            "epsilon": eps,
                            "defence": defence,
                            "accuracy": acc,
                            "n": 10,
                            "precision": "bf16",
                        }
                    )
    return pd.DataFrame(rows)


def test_transfer_matrix():
    m = transfer_matrix(made_up_transfer(), 0.1, "none")
    assert list(m.index) == ["a", "b"] and list(m.columns) == ["a", "b"]
    assert np.allclose(m.to_numpy(), [[0.1, 0.5], [0.5, 0.1]])
    assert transfer_matrix(made_up_transfer(), 0.1, "sigma=0.25").loc["a", "b"] == pytest.approx(0.8)
    with pytest.raises(ValueError, match="no rows at epsilon 0.2"):
        transfer_matrix(made_up_transfer(), 0.2, "none")


def made_up_iterations(classifier):
    return pd.DataFrame(
        [
            {
                "classifier": classifier,
                "attack": "pgd",
                "denoiser": "ddpm",
                "epsilon": 0.1,
                "steps": s,
                "defence": d,
                "accuracy": (0.5 if d == "none" else 0.8) / s**0.2,
                "n": 10,
                "linf_max": 0.1,
                "l2_max": 0.5,
                "precision": "fp32",
            }
            for s in (5, 10, 50)
            for d in ("none", "sigma=0.25", "sigma=0.5")
        ]
    )


@pytest.fixture
def results(tmp_path, monkeypatch):
    """Per-job files of the three stages and their summaries, under a results dir in tmp_path."""
    monkeypatch.chdir(tmp_path)
    ds = "digits"
    jobs = {"adaptive": [], "transfer": [], "iterations": []}
    for c, name in enumerate(("resnet", EVIL)):
        for sigma in (0.25, 0.5):
            jobs["adaptive"].append(tmp_path / f"adaptive-{c}-{sigma}.parquet")
            write_table(made_up_adaptive(name, sigma), jobs["adaptive"][-1])
        jobs["iterations"].append(tmp_path / f"iterations-{c}.parquet")
        write_table(made_up_iterations(name), jobs["iterations"][-1])
    jobs["transfer"].append(tmp_path / "transfer.parquet")
    write_table(made_up_transfer(), jobs["transfer"][-1])
    out = {}
    for key, table, png, svg in [
        ("iterations", layout.ITERATIONS_TABLE, layout.ITERATIONS_PNG, layout.ITERATIONS_SVG),
        ("transfer", layout.TRANSFER_TABLE, layout.TRANSFER_PNG, layout.TRANSFER_SVG),
        ("adaptive", layout.ADAPTIVE_TABLE, layout.ADAPTIVE_PNG, layout.ADAPTIVE_SVG),
    ]:
        out[key] = [layout.fill(p, dataset=ds) for p in (table, png, svg)]
    iterations_table(sweeps=jobs["iterations"], **dict(zip(("table", "png", "svg"), out["iterations"])))
    transfer_table(matrices=jobs["transfer"], **dict(zip(("table", "png", "svg"), out["transfer"])))
    tex = layout.fill(layout.ADAPTIVE_TEX, dataset=ds)
    adaptive_table_stage(
        results=jobs["adaptive"], tex=tex, dataset=ds, **dict(zip(("table", "png", "svg"), out["adaptive"]))
    )
    return out


CONFIG = {
    "dataset": {"name": "digits", "eval_size": 300},
    "iterations": {"attack": "pgd", "epsilon": 0.1, "steps": [5, 10, 50], "num_images": 10},
    "adaptive": {"attack": "pgd", "eot_draws": 4, "vote_draws": 32, "alpha": 0.001, "num_images": 10},
}


def test_summaries_write_tables_and_figures(results):
    for table, png, svg in results.values():
        assert len(pd.read_parquet(table)) > 0
        assert Path(png).read_bytes()[:8] == PNG
        assert Path(svg).read_text().lstrip().startswith("<?xml")
    # each summary names the precision of the jobs' tables it was made from
    precisions = {key: set(pd.read_parquet(table)["precision"]) for key, (table, _, _) in results.items()}
    assert precisions == {"iterations": {"fp32"}, "transfer": {"bf16"}, "adaptive": {"fp32"}}
    assert "(precision: fp32)}" in Path(layout.fill(layout.ADAPTIVE_TEX, dataset="digits")).read_text()


def test_report_sections_show_the_numbers(results):
    adaptive = adaptive_section(
        pd.read_parquet(results["adaptive"][0]), CONFIG["adaptive"], CONFIG["dataset"]["eval_size"]
    )
    one_draw = adaptive["tables"][0]
    assert one_draw["columns"] == [
        "Sigma",
        "Epsilon",
        "clean",
        "unaware PGD",
        "adaptive (single target)",
        "adaptive (smoothed target)",
    ]
    assert one_draw["rows"][0] == ["0.25", "0.1", "0.900", "0.600", "0.300", "0.400"]
    assert "4 noise draws" in adaptive["caption"]
    transfer = transfer_section(pd.read_parquet(results["transfer"][0]))
    first = transfer["tables"][0]
    assert first["columns"] == ["Epsilon", "Source", "a", "b"]
    assert ["0.1", "a", "0.100", "0.500"] in first["rows"]
    iterations = iterations_section(pd.read_parquet(results["iterations"][0]), CONFIG["iterations"])
    assert iterations["tables"][0]["columns"] == ["Steps", "none", "sigma=0.25", "sigma=0.5"]
    assert [r[0] for r in iterations["tables"][0]["rows"]] == ["5", "10", "50"]
