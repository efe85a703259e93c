"""The stages after classification: accuracy tables, figures, examples and the report.
Kept apart from `stages` so that the torch jobs do not import the plotting stack."""

import numpy as np
import pandas as pd

from . import certified as certified_mod
from . import attack_tables, blur, figures, layout, report, tables
from . import reference as paper
from .io import read_images, read_json, read_table, write_table, write_text


def _shards(pattern: str, shards, **values) -> list[str]:
    """The path of every shard of one output pattern."""
    return [layout.fill(pattern, shard=s, **values) for s in shards]


def _concat(paths, columns=None) -> pd.DataFrame:
    return pd.concat([read_table(p, columns) for p in paths], ignore_index=True)


def accuracy_table(dataset: str, classifier: str, attack_name: str, denoiser: str, epsilons, sigmas, shards,
                   table_path, tex_path, png_path, svg_path) -> None:
    """The Safeguarding Attention paper's table for one (classifier, attack, denoiser), with its figure."""
    def shards_of(pattern, **values):
        return _shards(pattern, shards, dataset=dataset, classifier=classifier, attack=attack_name, **values)

    epsilons, sigmas = [float(e) for e in epsilons], [float(s) for s in sigmas]
    df = tables.accuracy_table(
        classifier, attack_name, denoiser,
        undefended={e: shards_of(layout.PREDICTIONS_UNDEFENDED, epsilon=e) for e in epsilons},
        denoised={(s, e): shards_of(layout.PREDICTIONS_DENOISED, epsilon=e, sigma=s, denoiser=denoiser)
                  for s in sigmas for e in epsilons},
        adversarial={e: shards_of(layout.ADVERSARIAL, epsilon=e) for e in epsilons},
    )
    write_table(df, table_path)
    caption = f"{classifier} on {dataset}: accuracy under {attack_name}, undefended and denoised by {denoiser}"
    write_text(tables.latex_table(df, caption, f"tab:{dataset}-{classifier}-{attack_name}-{denoiser}"), tex_path)
    figures.accuracy_figure(df, png_path, svg_path)


def summary(table_paths, summary_path, png_path, svg_path) -> None:
    """All accuracy tables in one, and the figure comparing the classifiers."""
    df = _concat(table_paths)
    write_table(df, summary_path)
    figures.comparison_figure(df, png_path, svg_path)


def examples(count: int, epsilon: float, sigmas, clean_path, adversarial_path, denoised_paths, png_path) -> None:
    """A few images clean, attacked at the largest epsilon, and denoised at each sigma."""
    rows = [("clean", read_images(clean_path).images[:count]),
            (f"PGD eps={epsilon:g}", read_images(adversarial_path).images[:count])]
    rows += [(f"denoised sigma={float(s):g}", read_images(p).images[:count]) for s, p in zip(sigmas, denoised_paths)]
    figures.examples_figure(rows, png_path)


def html_report(config: dict, summary_path, benchmarks: dict, out_path, repo_dir=".") -> None:
    """The HTML report: tables, figures, time and peak memory per stage, config, provenance."""
    dataset = config["dataset"]["name"]
    df = read_table(summary_path)
    figure_list = [("Classifiers compared", layout.fill(layout.COMPARISON_PNG, dataset=dataset),
                    "Denoised accuracy against epsilon, one panel per sigma, one line per classifier.")]
    for k in df[["classifier", "attack", "denoiser"]].drop_duplicates().itertuples(index=False):
        png = layout.fill(layout.ACCURACY_PNG, dataset=dataset, classifier=k.classifier, attack=k.attack,
                          denoiser=k.denoiser)
        figure_list.append((f"{k.classifier}: {k.attack}, denoiser {k.denoiser}", png,
                            "Accuracy against epsilon: one line per sigma after denoising; dashed: no defence."))
    figure_list.append(("Examples", layout.fill(layout.EXAMPLES_FIGURE, dataset=dataset),
                        "Clean images, attacked at the largest epsilon, and denoised at each sigma."))
    models = [{"name": name, "kind": "classifier", "metrics": read_json(layout.fill(layout.CLASSIFIER_METRICS,
                                                                                      dataset=dataset, classifier=name))}
              for name in config["classifiers"]]
    models += [{"name": name, "kind": "denoiser", "metrics": read_json(layout.fill(layout.DENOISER_METRICS,
                                                                                    dataset=dataset, denoiser=name))}
               for name in config["denoisers"]]
    sections = []
    published = config["report"].get("reference")
    if published is not None:
        compared = paper.compare(df, paper.read_reference(published["table"]), dataset, published["classifiers"],
                                 published["attack"], published["denoiser"], published["n"])
        sections.append(paper.comparison_section(compared, published["source"], published["n"]))
    if config["certify"]["enabled"]:
        sections.append(_certified_section(config))
        figure_list += [(f"Certified accuracy: {c}, denoiser {d}",
                         layout.fill(layout.CERTIFIED_PNG, dataset=dataset, classifier=c, denoiser=d),
                         "Certified accuracy against L2 radius, one curve per sigma; dashed: multi-scale.")
                        for c in config["classifiers"] for d in config["denoisers"]]
    if config["blur"]["enabled"]:
        sections.append(_blur_section(config))
        figure_list.append(("Defences compared", layout.fill(layout.DEFENCES_PNG, dataset=dataset),
                            "Accuracy against epsilon with no defence, diffusion denoising and blur majority."))
    strength = [("iterations", _iterations_section, layout.ITERATIONS_PNG, "Accuracy against PGD iterations"),
                ("adaptive", _adaptive_section, layout.ADAPTIVE_PNG, "Adaptive attack against unaware PGD"),
                ("transfer", _transfer_section, layout.TRANSFER_PNG, "Transfer between classifiers")]
    for key, build, png, title in strength:
        if config[key]["enabled"]:
            sections.append(build(config))
            figure_list.append((title, layout.fill(png, dataset=dataset), sections[-1]["caption"]))
    if config["attention"]["enabled"]:
        sections.append(_attention_section(config))
        figure_list += [(f"Attention: {c}", layout.fill(layout.ATTENTION_PNG, dataset=dataset, classifier=c,
                                                        attack=config["attention"]["attack"], denoiser=d),
                         "Grad-CAM of the true class on the same images clean, attacked at each epsilon and denoised "
                         "at each sigma (from the largest epsilon).")
                        for c in config["classifiers"] for d in config["denoisers"]]
    html = report.render_report(df, figure_list, tables.stage_resources(benchmarks), config,
                                report.provenance(repo_dir), title=f"dds report: {dataset}", models=models,
                                sections=sections)
    report.write_report(html, out_path)


def certified(dataset: str, classifier: str, denoiser: str, sigmas, shards, adversarial_sets, spec: dict,
              table_path, tex_path, png_path, svg_path, tsv_paths: dict, multiscale_path) -> None:
    """Certified accuracy of one (classifier, denoiser): per-example TSVs per sigma, the
    multi-scale cascade's per-example results (with the stage where it stopped), the long
    table (per sigma, multi-scale, adversarial sets), its LaTeX and the certified-accuracy curve.
    `adversarial_sets`: (attack, epsilon) pairs that were certified as well."""
    sigmas = [float(s) for s in sigmas]

    def merged(pattern, columns=None, **values):
        return _concat(_shards(pattern, shards, dataset=dataset, classifier=classifier, denoiser=denoiser, **values),
                       columns)

    clean = {s: merged(layout.CERTIFICATES_CLEAN, sigma=s) for s in sigmas}
    for s in sigmas:
        certified_mod.write_tsv(clean[s], tsv_paths[s])
    adversarial = {}
    for attack, epsilon in adversarial_sets:
        norms = merged(layout.ADVERSARIAL, ["idx", "l2"], attack=attack, epsilon=float(epsilon))
        for s in sigmas:
            certs = merged(layout.CERTIFICATES_ADVERSARIAL, attack=attack, epsilon=float(epsilon), sigma=s)
            adversarial[(attack, float(epsilon), s)] = certs.merge(norms, on="idx", how="left", validate="one_to_one")
    multiscale = certified_mod.multiscale_examples(clean, spec["alpha"], spec["p0"])
    write_table(multiscale, multiscale_path)
    table = certified_mod.certified_table(classifier, denoiser, clean, adversarial, spec["radii"], multiscale)
    write_table(table, table_path)
    caption = f"{classifier} on {dataset}: certified accuracy through {denoiser} (alpha={spec['alpha']:g}, n={spec['n']})"
    write_text(certified_mod.latex_certified(table, caption, f"tab:{dataset}-{classifier}-{denoiser}-certified"),
               tex_path)
    top = max(max(float(f["radius"].max()) for f in clean.values()), max(spec["radii"]))
    grid = np.linspace(0, top * 1.05 or 1.0, 200)
    curves = {f"sigma={s:g}": (grid, certified_mod.curve(clean[s], grid)) for s in sigmas}
    curves[certified_mod.MULTISCALE] = (grid, certified_mod.curve(multiscale, grid))
    figures.certified_figure(curves, f"{classifier}, denoiser {denoiser}", png_path, svg_path)


def blur_summary(dataset: str, classifier: str, noise_levels, epsilons: dict, shards, table_path, tex_path) -> None:
    """The blur-majority table of one classifier: per noise level on the clean set (the
    blog's table) and per attack epsilon on the adversarial sets."""
    def merged(pattern, **values):
        return _concat(_shards(pattern, shards, dataset=dataset, classifier=classifier, **values))

    frames = [merged(layout.BLUR_CLEAN, noise=float(level)).assign(source="noise", attack="", epsilon=0.0)
              for level in noise_levels]
    frames += [merged(layout.BLUR_ADVERSARIAL, attack=attack, epsilon=float(eps)).assign(source="attack", attack=attack,
                                                                                        epsilon=float(eps))
               for attack, eps_list in epsilons.items() for eps in eps_list]
    table = blur.blur_table(pd.concat(frames, ignore_index=True).assign(classifier=classifier))
    write_table(table, table_path)
    caption = f"{classifier} on {dataset}: Gaussian-blur majority defence under Gaussian noise"
    write_text(blur.latex_blur_table(table[table["source"] == "noise"], caption, f"tab:{dataset}-{classifier}-blur"),
               tex_path)


def iterations_summary(paths, table_path, png_path, svg_path) -> None:
    """The PGD iteration sweeps of every classifier in one table and figure."""
    table = _concat(paths)
    write_table(table, table_path)
    figures.iterations_figure(table, png_path, svg_path)


def attention_summary(paths, table_path) -> None:
    """How far attention moves under attack and comes back after denoising, per classifier,
    method, condition, epsilon and sigma."""
    from .attention_maps import attention_shift_table

    write_table(attention_shift_table(_concat(paths)), table_path)


def adaptive_summary(dataset: str, paths, table_path, tex_path, png_path, svg_path) -> None:
    """The adaptive attack beside the unaware one: table, LaTeX and figure."""
    table = attack_tables.adaptive_table(_concat(paths))
    write_table(table, table_path)
    caption = (f"{dataset}: single-draw denoised accuracy under the unaware PGD and under the adaptive attack "
               "through noise, denoiser and classifier (EOT)")
    write_text(attack_tables.latex_adaptive(table, caption, f"tab:{dataset}-adaptive"), tex_path)
    figures.adaptive_figure(table, png_path, svg_path)


def transfer_summary(paths, table_path, png_path, svg_path) -> None:
    """The transfer results of every source classifier: one table, heat maps per defence
    and epsilon (of the first attack and denoiser)."""
    table = _concat(paths)
    write_table(table, table_path)
    first = table[(table["attack"] == table["attack"].iloc[0]) & (table["denoiser"] == table["denoiser"].iloc[0])]
    matrices = {(d, e): attack_tables.transfer_matrix(first, e, d)
                for d, e in first[["defence", "epsilon"]].drop_duplicates().itertuples(index=False) if e > 0}
    figures.transfer_figure(matrices, png_path, svg_path)


DEFENCE_COLUMNS = ["classifier", "attack", "epsilon", "defence", "accuracy", "reject_rate"]


def defences(accuracy_paths, blur_paths, table_path, png_path, svg_path) -> None:
    """One table and figure comparing, per classifier and attack epsilon: no defence,
    diffusion denoising at each sigma, single blur, and the blur majority vote."""
    acc = _concat(accuracy_paths)
    attacked = _concat(blur_paths).query("source == 'attack'")
    keys = ["classifier", "attack", "epsilon"]
    several = acc["denoiser"].nunique() > 1
    parts = [acc.drop_duplicates(keys).assign(defence="none", accuracy=acc["pgd_acc"])]
    parts += [rows.assign(defence=f"{d + ' ' if several else ''}diffusion sigma={s:g}", accuracy=rows["denoised_acc"])
              for (d, s), rows in acc.groupby(["denoiser", "sigma"])]
    parts += [attacked.drop(columns="reject_rate").assign(defence="blur single", accuracy=attacked["acc_ss"]),
              attacked.assign(defence="blur majority", accuracy=attacked["acc_maj"])]  # keeps its reject_rate
    table = pd.concat([p.reindex(columns=DEFENCE_COLUMNS) for p in parts], ignore_index=True)
    table = table.sort_values(keys + ["defence"], ignore_index=True)
    write_table(table, table_path)
    figures.defences_figure(table, png_path, svg_path)


def _fixed(value) -> str:
    return "—" if pd.isna(value) else f"{value:.3f}"


def _certified_section(config: dict) -> dict:
    """Per (classifier, denoiser): certified accuracy per method and radius on the clean
    sample, the best single sigma per radius (its clean accuracy in parentheses), and the
    adversarial sets' coverage."""
    dataset, spec = config["dataset"]["name"], config["certify"]
    out = []
    for c in config["classifiers"]:
        for d in config["denoisers"]:
            table = read_table(layout.fill(layout.CERTIFIED, dataset=dataset, classifier=c, denoiser=d))
            clean = table[table["source"] == "clean"]
            radii = sorted(clean["radius"].unique())
            rows = [[method, *(_fixed(a) for a in g.sort_values("radius")["certified_acc"]),
                     _fixed(g["smoothed_acc"].iloc[0]), _fixed(g["abstain_rate"].iloc[0])]
                    for method, g in clean.groupby("method", sort=False)]
            best = certified_mod.best_over_sigmas(table)
            rows.append(["best sigma", *(f"{b.certified_acc:.3f} ({b.clean_acc:.3f}, sigma={b.sigma:g})"
                                         for b in best.itertuples()), "", ""])
            out.append({"caption": f"{c}, denoiser {d}: certified accuracy on the clean sample",
                        "columns": ["Method", *(f"r={r:g}" for r in radii), "PREDICT acc.", "abstain"], "rows": rows})
            attacked = table[(table["source"] == "adversarial") & (table["radius"] == radii[0])]
            if len(attacked):
                out.append({"caption": f"{c}, denoiser {d}: certification of adversarial sets",
                            "columns": ["Attack", "Epsilon", "Method", "certified acc. (r=0)", "radius covers L2"],
                            "rows": [[r.attack, f"{r.epsilon:g}", r.method, _fixed(r.certified_acc), _fixed(r.covered)]
                                     for r in attacked.itertuples()]})
    return {"title": "Certification", "tables": out,
            "caption": f"CERTIFY of Cohen et al. through the one-shot denoiser: n0={spec['n0']}, n={spec['n']}, "
                       f"alpha={spec['alpha']:g}, first {spec['num_images']} evaluation images; multi-scale: the "
                       f"cascade of Jeong and Shin over all sigmas on the same draws (p0={spec['p0']:g})."}


def _blur_section(config: dict) -> dict:
    """The blur-majority tables: per noise level (the blog's table) and per attack epsilon."""
    dataset, spec = config["dataset"]["name"], config["blur"]
    out = []
    for c in config["classifiers"]:
        table = read_table(layout.fill(layout.BLUR_TABLE, dataset=dataset, classifier=c))
        out.append({"caption": f"{c}: blur majority under Gaussian noise and under attack",
                    "columns": ["Source", "Noise level", "Epsilon", "Acc_NS", "Acc_SS", "Acc_DS", "Acc_Maj",
                                "Reject rate"],
                    "rows": [[f"{r.source} {r.attack}".strip(), f"{r.noise_level:g}", f"{r.epsilon:g}",
                              *(_fixed(v) for v in (r.acc_ns, r.acc_ss, r.acc_ds, r.acc_maj, r.reject_rate))]
                             for r in table.itertuples()]})
    return {"title": "Gaussian-blur majority", "tables": out,
            "caption": f"Predictions on the image (NS), blurred once (SS) and twice (DS) with a "
                       f"{spec['kernel_size']}x{spec['kernel_size']} Gaussian kernel of sigma {spec['sigma']:g}; "
                       "Acc_Maj is the accuracy of the majority vote among the images it does not reject."}


def _iterations_section(config: dict) -> dict:
    """Accuracy per classifier and PGD step count, undefended and denoised at each sigma."""
    spec = config["iterations"]
    table = read_table(layout.fill(layout.ITERATIONS_TABLE, dataset=config["dataset"]["name"]))
    defences = sorted(table["defence"].unique(), key=lambda d: (d != "none", d))
    out = []
    for (c, d), rows in table.groupby(["classifier", "denoiser"]):
        wide = rows.pivot_table(index="steps", columns="defence", values="accuracy")
        out.append({"caption": f"{c}, denoiser {d}: accuracy against PGD iterations",
                    "columns": ["Steps", *(f"{x}" for x in defences)],
                    "rows": [[str(steps), *(_fixed(wide.loc[steps].get(x)) for x in defences)] for steps in wide.index]})
    return {"title": "Accuracy against PGD iterations", "tables": out,
            "caption": f"The attack '{spec['attack']}' rerun with {', '.join(map(str, spec['steps']))} steps at "
                       f"epsilon {spec['epsilon']:g} on the first {spec['num_images']} evaluation images: undefended "
                       "(none) and denoised at each sigma with the noise draws of the main tables."}


ADAPTIVE_COLUMNS = {"clean": "clean", "unaware": "unaware PGD", "adaptive-single": "adaptive (single target)",
                    "adaptive-smoothed": "adaptive (smoothed target)"}


def _adaptive_section(config: dict) -> dict:
    """Per (classifier, denoiser): one-draw and smoothed accuracy, clean, under the unaware
    PGD and under the adaptive attack (each target), per sigma and epsilon."""
    spec = config["adaptive"]
    table = read_table(layout.fill(layout.ADAPTIVE_TABLE, dataset=config["dataset"]["name"]))
    out = []
    for (c, d), rows in table.groupby(["classifier", "denoiser"], sort=False):
        for metric, what in (("acc_single", "one-draw denoised accuracy"), ("acc_smoothed", "smoothed accuracy (PREDICT)")):
            wide = attack_tables.adaptive_wide(rows, metric)
            clean = wide.groupby("sigma")["clean"].max() if "clean" in wide else None
            kinds = [k for k in ADAPTIVE_COLUMNS if k in wide.columns and k != "clean"]
            attacked = wide[wide["epsilon"] > 0]
            out.append({"caption": f"{c}, denoiser {d}: {what}",
                        "columns": ["Sigma", "Epsilon", "clean", *(ADAPTIVE_COLUMNS[k] for k in kinds)],
                        "rows": [[f"{r['sigma']:g}", f"{r['epsilon']:g}",
                                  _fixed(clean.get(r["sigma"]) if clean is not None else None),
                                  *(_fixed(r[k]) for k in kinds)] for r in attacked.to_dict("records")]})
    return {"title": "Adaptive attack", "tables": out,
            "caption": f"PGD of attack '{spec['attack']}' (same epsilon, steps and step size as the unaware attack) "
                       f"through the noise, the one-shot denoiser and the classifier, expectation over "
                       f"{spec['eot_draws']} noise draws per step; target single: the one-draw defended classifier, "
                       "smoothed: the soft smoothed classifier. Evaluated on the first "
                       f"{min(spec['num_images'], config['dataset']['eval_size'])} evaluation images with the main "
                       f"tables' noise draw (one draw) and with PREDICT on {spec['vote_draws']} fresh draws "
                       f"(alpha={spec['alpha']:g}; abstentions count as errors). The unaware attack is made on the "
                       "bare classifier."}


def _transfer_section(config: dict) -> dict:
    """Per defence: accuracy of each target classifier on each source's adversarial examples."""
    table = read_table(layout.fill(layout.TRANSFER_TABLE, dataset=config["dataset"]["name"]))
    targets = sorted(table["target"].unique())
    out = []
    for (attack, denoiser, defence), rows in table.groupby(["attack", "denoiser", "defence"], sort=False):
        body = []
        for (eps, source), cells in rows.groupby(["epsilon", "source"]):
            acc = cells.set_index("target")["accuracy"]
            body.append([f"{eps:g}", source, *(_fixed(acc.get(t)) for t in targets)])
        where = "no defence" if defence == "none" else f"denoised by {denoiser} at {defence}"
        out.append({"caption": f"{attack}, {where}: accuracy of each target (columns) on each source's examples",
                    "columns": ["Epsilon", "Source", *targets], "rows": body})
    return {"title": "Transfer between classifiers", "tables": out,
            "caption": "Adversarial examples made on the source classifier, classified by every classifier, "
                       "undefended and after denoising (the same denoised images as the main tables); "
                       "source = target is the white-box attack."}


def _attention_section(config: dict) -> dict:
    """Per classifier and method: rank correlation and top-k overlap with the clean maps."""
    table = read_table(layout.fill(layout.ATTENTION_TABLE, dataset=config["dataset"]["name"]))
    out = []
    for (c, method), rows in table.groupby(["classifier", "method"], sort=False):
        out.append({"caption": f"{c}: {'Grad-CAM' if method == 'gradcam' else 'CBAM spatial attention'} against "
                               "the clean image's map",
                    "columns": ["Condition", "Epsilon", "Sigma", "Spearman (mean)", "Spearman (sd)", "top-20% IoU",
                                "images"],
                    "rows": [[r.condition, f"{r.epsilon:g}", "" if pd.isna(r.sigma) else f"{r.sigma:g}",
                              _fixed(r.spearman_mean), _fixed(r.spearman_std), _fixed(r.topk_iou_mean),
                              str(r.images)]
                             for r in rows.sort_values(["condition", "epsilon", "sigma"]).itertuples()]})
    return {"title": "Attention under attack and denoising", "tables": out,
            "caption": "Per image, Spearman's rank correlation and the overlap (IoU) of the 20% most attended pixels "
                       "between the map of the clean image and the map of its attacked or denoised version (1: the "
                       "classifier looks at the same places); Grad-CAM explains the true class. Denoised rows at "
                       "epsilon 0 are the clean images denoised."}
