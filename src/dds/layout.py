"""Where every file of the workflow lives: one pattern per kind of output, shared by the
Snakemake rules (as wildcard patterns) and the library (to name inputs it reads), so the
two never drift apart. Floats in paths are written with repr(), which round-trips exactly."""

ROOT = "results/{dataset}"
SAMPLE_TRAIN = ROOT + "/sample/train.parquet"
SAMPLE_EVAL = ROOT + "/sample/eval.parquet"
MANIFEST = ROOT + "/sample/manifest.json"
CLASSIFIER = ROOT + "/classifiers/{classifier}.safetensors"
CLASSIFIER_METRICS = ROOT + "/classifiers/{classifier}.json"
DENOISER = ROOT + "/denoisers/{denoiser}.safetensors"
DENOISER_METRICS = ROOT + "/denoisers/{denoiser}.json"
ADVERSARIAL = ROOT + "/adversarial/{classifier}/{attack}/eps{epsilon}/shard{shard}.parquet"
DENOISED = ROOT + "/denoised/{denoiser}/sigma{sigma}/{classifier}/{attack}/eps{epsilon}/shard{shard}.parquet"
PREDICTIONS_UNDEFENDED = ROOT + "/predictions/{classifier}/{attack}/eps{epsilon}/undefended/shard{shard}.parquet"
PREDICTIONS_DENOISED = ROOT + "/predictions/{classifier}/{attack}/eps{epsilon}/{denoiser}/sigma{sigma}/shard{shard}.parquet"
TABLE = ROOT + "/tables/{classifier}/{attack}/{denoiser}.parquet"
TABLE_TEX = ROOT + "/tables/{classifier}/{attack}/{denoiser}.tex"
SUMMARY = ROOT + "/tables/accuracy.parquet"
ACCURACY_PNG = ROOT + "/figures/accuracy-{classifier}-{attack}-{denoiser}.png"
ACCURACY_SVG = ROOT + "/figures/accuracy-{classifier}-{attack}-{denoiser}.svg"
COMPARISON_PNG = ROOT + "/figures/comparison.png"
COMPARISON_SVG = ROOT + "/figures/comparison.svg"
EXAMPLES_FIGURE = ROOT + "/figures/examples.png"
REPORT = ROOT + "/report.html"


def log(pattern: str) -> str:
    """The log file of the job that writes `pattern`: the same path under logs/."""
    return "logs/" + pattern.removeprefix("results/").rsplit(".", 1)[0] + ".log"


def benchmark(pattern: str) -> str:
    """The Snakemake benchmark file (time, peak memory) of the job that writes `pattern`."""
    return "results/{dataset}/benchmarks/" + pattern.removeprefix(ROOT + "/").rsplit(".", 1)[0] + ".tsv"


def num(x) -> str:
    """A float as it appears in paths: repr(float(x)), e.g. 0.25 -> '0.25', 1 -> '1.0'."""
    return repr(float(x))


def fill(pattern: str, **values) -> str:
    """The concrete path for `pattern`, floats (epsilon, sigma) written with num()."""
    return pattern.format(**{k: num(v) if isinstance(v, float) else v for k, v in values.items()})
