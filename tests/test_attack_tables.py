"""Tables, figures and report sections of attack strength: the adaptive attack beside the
unaware one, the transfer matrix, accuracy against PGD iterations (on made-up results)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dds import layout
from dds.evaluation.adaptive import SETTINGS
from dds.io import write_table
from dds.pipeline.adaptive import adaptive_table as adaptive_table_stage
from dds.pipeline.iterations import iterations_table
from dds.pipeline.transfer import transfer_table
from dds.reporting.attack_tables import adaptive_settings, adaptive_table, transfer_matrix
from dds.reporting.latex import adaptive_latex
from dds.reporting.sections import adaptive_section, iterations_section, transfer_section

PNG = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert(1)</script>"


KIND_SETTINGS = {  # steps, step size, EOT draws, straight-through, BPDA of each made-up kind (None: not applicable)
    "clean": (None, None, None, None, None),
    "unaware": (5, 0.05, None, None, None),
    "adaptive-single": (5, 0.05, 4, True, False),
    "adaptive-smoothed": (5, 0.05, 4, True, False),
    "adaptive-single-masked": (5, 0.05, 4, False, False),
    "adaptive-fixed-noise": (5, 0.05, 1, True, False),
}


def made_up_adaptive(classifier="resnet", sigma=0.25, n=10):
    """Per-image rows as the adaptive stage writes them, with 4 evaluation draws: for a kind
    with count c, draw j classifies the first c, c, c + 1, c - 1 images right (so the majority
    is right on the first c), and the one-draw prediction the first c - 1; the accuracy falls
    from clean to unaware to adaptive."""
    counts = {
        ("clean", 0.0): 9,
        ("unaware", 0.1): 6,
        ("adaptive-single", 0.1): 3,
        ("adaptive-smoothed", 0.1): 4,
        ("adaptive-single-masked", 0.1): 5,
        ("adaptive-fixed-noise", 0.1): 2,
    }
    frames = []
    for (kind, eps), c in counts.items():
        draws = np.arange(n)[:, None] < np.array([c, c, c + 1, c - 1])
        steps, step, eot, through, bpda = KIND_SETTINGS[kind]
        frames.append(
            pd.DataFrame(
                {
                    "idx": np.arange(n),
                    "label": np.zeros(n, dtype=np.int64),
                    "epsilon": eps,
                    "attack": kind,
                    "pred_single": np.where(np.arange(n) < c - 1, 0, 1),
                    "correct_single": np.arange(n) < c - 1,
                    "correct_draws": list(draws),
                    "frac_correct": draws.mean(1),
                    "pred_majority": np.where(np.arange(n) < c, 0, 1),
                    "correct_majority": np.arange(n) < c,
                    "linf": np.full(n, eps),
                    "l2": np.full(n, 2 * eps),
                    "t_star": 50 if sigma == 0.25 else 100,
                    "eval_draws": 4,
                    "steps": steps,
                    "step_size": step,
                    "eot_draws": eot,
                    "straight_through": through,
                    "bpda": bpda,
                }
            ).astype(SETTINGS)
        )
    return pd.concat(frames, ignore_index=True).assign(
        classifier=classifier, denoiser="ddpm", attack_name="pgd", sigma=sigma, precision="fp32"
    )


ORDER = ["clean", "unaware", "adaptive-single", "adaptive-smoothed", "adaptive-single-masked", "adaptive-fixed-noise"]


def test_adaptive_table_accuracies_and_order():
    rows = made_up_adaptive()
    table = adaptive_table(rows.sample(frac=1, random_state=0))  # input order does not matter
    assert list(table["attack"]) == ORDER
    assert list(table["acc_single"]) == pytest.approx([0.8, 0.5, 0.2, 0.3, 0.4, 0.1])
    assert list(table["acc_draws"]) == pytest.approx([0.9, 0.6, 0.3, 0.4, 0.5, 0.2])
    assert list(table["acc_majority"]) == pytest.approx([0.9, 0.6, 0.3, 0.4, 0.5, 0.2])
    # per-draw accuracies c, c, c + 1, c - 1 (over 10): sample std sqrt(2 / 3) / 10
    assert list(table["acc_draws_std"]) == pytest.approx([(2 / 3) ** 0.5 / 10] * 6)
    assert list(table["n"]) == [10] * 6
    assert table.loc[1, "linf_max"] == pytest.approx(0.1) and table.loc[1, "l2_mean"] == pytest.approx(0.2)
    assert list(table["eot_draws"].astype("Float64").fillna(0)) == [0, 0, 4, 4, 4, 1]
    assert table["straight_through"].isna().sum() == 2 and table.loc[4, "straight_through"] == False  # noqa: E712
    assert set(table["t_star"]) == {50} and set(table["eval_draws"]) == {4}


def test_adaptive_table_spread_is_over_draws():
    """Spread of the per-draw accuracies, by hand: draws right on 2/3, 1/3 and 0/3 images."""
    rows = made_up_adaptive(n=3).query("attack == 'clean'").copy()
    rows["correct_draws"] = [np.array([True, True, False]), np.array([True, False, False]), np.array([False] * 3)]
    rows["frac_correct"] = [2 / 3, 1 / 3, 0.0]
    table = adaptive_table(rows)
    assert table.loc[0, "acc_draws"] == pytest.approx(1 / 3)
    assert table.loc[0, "acc_draws_std"] == pytest.approx(np.std([2 / 3, 1 / 3, 0], ddof=1))
    one_draw = adaptive_table(rows.assign(correct_draws=[np.array([True])] * 3))
    assert np.isnan(one_draw.loc[0, "acc_draws_std"])


def test_adaptive_settings_in_words():
    text = adaptive_settings(adaptive_table(pd.concat([made_up_adaptive(), made_up_adaptive(sigma=0.5)])))
    assert "(0.25: 50, 0.5: 100)" in text and "k = 4 fresh noise draws" in text
    assert "5 PGD steps" in text and "4 EOT draws per step" in text
    assert "straight through the defence's clamps (adaptive (single target, masked gradients): masked" in text
    assert "overstates the attack" in text


def test_adaptive_latex_compiles(compile_latex):
    table = adaptive_table(pd.concat([made_up_adaptive("res_net"), made_up_adaptive("vit", 0.5)]))
    tex = adaptive_latex(table.assign(precision="fp32"), "Adaptive & unaware", "tab:adaptive")
    assert r"res\_net & 0.25 & 0.1 & unaware PGD & 0.500 & 0.600 & 0.082 & 0.600 \\" in tex
    assert "Adaptive \\& unaware. Defence: noise sigma" in tex and "k = 4" in tex
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
    "adaptive": {"attack": "pgd", "eot_draws": 4, "eval_draws": 4, "num_images": 10},
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
    first = adaptive["tables"][0]
    assert first["columns"] == [
        "Sigma",
        "t*",
        "Epsilon",
        "Attack",
        "Steps",
        "Step size",
        "EOT draws",
        "Straight-through",
        "one draw",
        "mean over draws",
        "std over draws",
        "majority",
    ]
    assert [r[3] for r in first["rows"][:2]] == ["clean", "unaware PGD"]
    assert first["rows"][0] == ["0.25", "50", "0", "clean", "—", "—", "—", "—", "0.800", "0.900", "0.082", "0.900"]
    assert first["rows"][4][3:8] == ["adaptive (single target, masked gradients)", "5", "0.05", "4", "no"]
    assert "4 EOT draws per step" in adaptive["caption"] and "first 10 evaluation images" in adaptive["caption"]
    transfer = transfer_section(pd.read_parquet(results["transfer"][0]))
    first = transfer["tables"][0]
    assert first["columns"] == ["Epsilon", "Source", "a", "b"]
    assert ["0.1", "a", "0.100", "0.500"] in first["rows"]
    iterations = iterations_section(pd.read_parquet(results["iterations"][0]), CONFIG["iterations"])
    assert iterations["tables"][0]["columns"] == ["Steps", "none", "sigma=0.25", "sigma=0.5"]
    assert [r[0] for r in iterations["tables"][0]["rows"]] == ["5", "10", "50"]
