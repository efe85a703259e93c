"""Where every file of the workflow lives: one pattern per kind of output, shared by the
Snakemake rules (as wildcard patterns) and the library (to name inputs it reads), so the
two never drift apart. Floats in paths are written with repr(), which round-trips exactly."""

import re
import string
from pathlib import PurePath

ROOT = "results/{dataset}"
SAMPLE_TRAIN = ROOT + "/sample/train.parquet"
SAMPLE_EVAL = ROOT + "/sample/eval.parquet"
MANIFEST = ROOT + "/sample/manifest.json"
CLASSIFIER = ROOT + "/classifiers/{classifier}.safetensors"
CLASSIFIER_METRICS = ROOT + "/classifiers/{classifier}.json"
# the training checkpoint of the last finished epoch, removed once the classifier is written
CLASSIFIER_CHECKPOINT = ROOT + "/classifiers/{classifier}.checkpoint"
# a trained DDPM, or for an official checkpoint the reference to its verified file
DENOISER = ROOT + "/denoisers/{denoiser}.safetensors"
DENOISER_METRICS = ROOT + "/denoisers/{denoiser}.json"
# the fine-tuning checkpoint of a calibrated denoiser, removed once its weights are written
DENOISER_CHECKPOINT = ROOT + "/denoisers/{denoiser}.checkpoint"
ADVERSARIAL = ROOT + "/adversarial/{classifier}/{attack}/eps{epsilon}/shard{shard}.parquet"
DENOISED = ROOT + "/denoised/{denoiser}/sigma{sigma}/{classifier}/{attack}/eps{epsilon}/shard{shard}.parquet"
# the jobs that run over every image set of a (classifier, shard), named for their logs and
# benchmarks: one per classifier and shard, and per denoiser (all sigmas) for denoising
DENOISE_JOB = ROOT + "/denoised/{denoiser}/{classifier}/shard{shard}"
CLASSIFY_JOB = ROOT + "/predictions/{classifier}/undefended/shard{shard}"
BLUR_NOISE_JOB = ROOT + "/blur/{classifier}/noise/shard{shard}"
BLUR_ADVERSARIAL_JOB = ROOT + "/blur/{classifier}/adversarial/shard{shard}"
PREDICTIONS_UNDEFENDED = ROOT + "/predictions/{classifier}/{attack}/eps{epsilon}/undefended/shard{shard}.parquet"
PREDICTIONS_DENOISED = (
    ROOT + "/predictions/{classifier}/{attack}/eps{epsilon}/{denoiser}/sigma{sigma}/shard{shard}.parquet"
)
TABLE = ROOT + "/tables/{classifier}/{attack}/{denoiser}.parquet"
TABLE_TEX = ROOT + "/tables/{classifier}/{attack}/{denoiser}.tex"
SUMMARY = ROOT + "/tables/accuracy.parquet"
ACCURACY_PNG = ROOT + "/figures/accuracy-{classifier}-{attack}-{denoiser}.png"
ACCURACY_SVG = ROOT + "/figures/accuracy-{classifier}-{attack}-{denoiser}.svg"
COMPARISON_PNG = ROOT + "/figures/comparison.png"
COMPARISON_SVG = ROOT + "/figures/comparison.svg"
EXAMPLES_FIGURE = ROOT + "/figures/examples.png"
# one clean certification job writes a file per classifier into its folder
CERTIFY_CLEAN_JOB = ROOT + "/certify-clean/{denoiser}/sigma{sigma}/shard{shard}"
CERTIFICATES_CLEAN = CERTIFY_CLEAN_JOB + "/{classifier}.parquet"
CERTIFICATES_ADVERSARIAL = (
    ROOT + "/certify-adversarial/{classifier}/{attack}/eps{epsilon}/{denoiser}/sigma{sigma}/shard{shard}.parquet"
)
CERTIFICATES_TSV = ROOT + "/certify-clean/{denoiser}/sigma{sigma}/{classifier}.tsv"
MULTISCALE_EXAMPLES = ROOT + "/certify-clean/{denoiser}/multiscale/{classifier}.parquet"
CERTIFIED = ROOT + "/tables/certified/{classifier}/{denoiser}.parquet"
CERTIFIED_TEX = ROOT + "/tables/certified/{classifier}/{denoiser}.tex"
CERTIFIED_PNG = ROOT + "/figures/certified-{classifier}-{denoiser}.png"
CERTIFIED_SVG = ROOT + "/figures/certified-{classifier}-{denoiser}.svg"
BLUR_CLEAN = ROOT + "/blur/{classifier}/noise{noise}/shard{shard}.parquet"
BLUR_ADVERSARIAL = ROOT + "/blur/{classifier}/{attack}/eps{epsilon}/shard{shard}.parquet"
BLUR_TABLE = ROOT + "/tables/blur/{classifier}.parquet"
BLUR_TEX = ROOT + "/tables/blur/{classifier}.tex"
DEFENCES = ROOT + "/tables/defences.parquet"
DEFENCES_PNG = ROOT + "/figures/defences.png"
DEFENCES_SVG = ROOT + "/figures/defences.svg"
ITERATIONS = ROOT + "/iterations/{classifier}/{attack}/{denoiser}.parquet"
ITERATIONS_TABLE = ROOT + "/tables/iterations.parquet"
ITERATIONS_PNG = ROOT + "/figures/iterations.png"
ITERATIONS_SVG = ROOT + "/figures/iterations.svg"
ADAPTIVE = ROOT + "/adaptive/{classifier}/{attack}/{denoiser}/sigma{sigma}.parquet"
ADAPTIVE_TABLE = ROOT + "/tables/adaptive.parquet"
ADAPTIVE_TEX = ROOT + "/tables/adaptive.tex"
ADAPTIVE_PNG = ROOT + "/figures/adaptive.png"
ADAPTIVE_SVG = ROOT + "/figures/adaptive.svg"
TRANSFER = ROOT + "/transfer/{classifier}/{attack}/{denoiser}.parquet"
TRANSFER_TABLE = ROOT + "/tables/transfer.parquet"
TRANSFER_PNG = ROOT + "/figures/transfer.png"
TRANSFER_SVG = ROOT + "/figures/transfer.svg"
# one-shot beside multi-step purification: one job per (denoiser, sigma), fused over the classifiers
PURIFICATION = ROOT + "/purification/{denoiser}/sigma{sigma}/attacks.parquet"
PURIFICATION_CERTIFICATES = ROOT + "/purification/{denoiser}/sigma{sigma}/certificates.parquet"
PURIFICATION_TABLE = ROOT + "/tables/purification.parquet"
PURIFICATION_TEX = ROOT + "/tables/purification.tex"
PURIFICATION_PNG = ROOT + "/figures/purification.png"
PURIFICATION_SVG = ROOT + "/figures/purification.svg"
ATTENTION = ROOT + "/attention/{classifier}/{attack}/{denoiser}.parquet"
ATTENTION_PNG = ROOT + "/figures/attention-{classifier}-{attack}-{denoiser}.png"
ATTENTION_TABLE = ROOT + "/tables/attention.parquet"
REPORT = ROOT + "/report.html"
# official diffusion checkpoints, downloaded once for every dataset
CHECKPOINT = "data/checkpoints/{checkpoint}.pt"


def _stem(pattern: str) -> str:
    """The pattern without its file extension (if the last component has one)."""
    head, _, name = pattern.rpartition("/")
    return f"{head}/{name.split('.', 1)[0]}"


def log(pattern: str) -> str:
    """The log file of the job that writes `pattern`: the same path under logs/."""
    return "logs/" + _stem(pattern).removeprefix("results/") + ".log"


def benchmark(pattern: str) -> str:
    """The Snakemake benchmark file (time, peak memory) of the job that writes `pattern`."""
    return "results/{dataset}/benchmarks/" + _stem(pattern).removeprefix(ROOT + "/") + ".tsv"


# beside a job's log, the peak memory and CPU time of a job the job server ran (dds.jobs)
USAGE_SUFFIX = ".usage.json"


def usage(benchmark_path) -> str:
    """The usage record of the job that `benchmark_path` (see benchmark) times: beside its log,
    which lies under logs/ where the benchmark lies under results/<dataset>/benchmarks/."""
    parts = PurePath(benchmark_path).parts
    at = len(parts) - 1 - parts[::-1].index("benchmarks") if "benchmarks" in parts else -1
    if at < 2 or parts[at - 2] != "results" or not parts[-1].endswith(".tsv"):
        raise ValueError(f"{benchmark_path}: not a benchmark file (results/<dataset>/benchmarks/.../<name>.tsv)")
    log = PurePath(*parts[: at - 2], "logs", parts[at - 1], *parts[at + 1 :])
    return str(log.with_name(log.name.removesuffix(".tsv") + ".log" + USAGE_SUFFIX))


def num(x) -> str:
    """A float as it appears in paths: repr(float(x)), e.g. 0.25 -> '0.25', 1 -> '1.0'."""
    return repr(float(x))


def fill(pattern: str, **values) -> str:
    """The concrete path for `pattern`, floats (epsilon, sigma) written with num()."""
    return pattern.format(**{k: num(v) if isinstance(v, float) else v for k, v in values.items()})


def expect_files(rule: str, count: int, items: str, **files) -> None:
    """Stop a job that runs over several sets (or sigmas, noise levels) unless each list of
    `files` has one file per item: `count` items, described as `items` in the error."""
    for name, paths in files.items():
        if len(paths) != count:
            raise ValueError(f"{rule}: {items} need {count} {name} files, got {len(paths)}")


def certify_rows(shard: int, shard_size: int, num_images: int, shard_file: bool) -> list[int]:
    """Rows [start, stop) of the images to certify in shard `shard`: only the first
    `num_images` of the evaluation sample are certified. `shard_file`: the input file holds
    just this shard (an adversarial shard) rather than the whole sample."""
    offset = shard * shard_size
    count = min(shard_size, num_images - offset)
    if count <= 0:
        raise ValueError(f"shard {shard} holds none of the first {num_images} images (shards of {shard_size})")
    start = 0 if shard_file else offset
    return [start, start + count]


# wildcards whose values are numbers: floats as num() writes them, shards as integers
_NUMBERS = {"epsilon": float, "sigma": float, "noise": float, "shard": int}


def _regex(pattern: str, choices: dict) -> re.Pattern:
    parts, seen = [], set()
    for literal, name, _, _ in string.Formatter().parse(pattern):
        parts.append(re.escape(literal))
        if name is not None:
            value = "|".join(map(re.escape, choices[name])) if name in choices else "[^/]+"
            parts.append(f"(?P={name})" if name in seen else f"(?P<{name}>{value})")
            seen.add(name)
    return re.compile("".join(parts))


def parse(pattern: str, path, **choices) -> dict:
    """The wildcard values of a concrete `path` of `pattern` (numbers as numbers): how a
    stage learns what each of its input files is, from the file's own name. `choices`: the
    names a wildcard can take, where names joined by "-" in one file name (figures named
    accuracy-{classifier}-{attack}-{denoiser}) could otherwise split more than one way."""
    match = _regex(pattern, choices).fullmatch(str(path))
    if match is None:
        raise ValueError(f"{path} is not a path of the pattern {pattern}")
    return {k: _NUMBERS.get(k, str)(v) for k, v in match.groupdict().items()}


def group(paths, pattern: str, *keys: str, choices: dict | None = None) -> dict:
    """Concrete paths of `pattern` grouped by the values of `keys` (one key: the value; several:
    a tuple), each group in shard order; `choices` as for parse()."""
    groups = {}
    for path in paths:
        values = parse(pattern, path, **(choices or {}))
        key = tuple(values[k] for k in keys)
        groups.setdefault(key[0] if len(keys) == 1 else key, []).append((values.get("shard", 0), str(path)))
    return {key: [p for _, p in sorted(members)] for key, members in groups.items()}
