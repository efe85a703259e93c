"""dds.layout's path parsing (how stages learn what each input file is) and dds.runtime.run_stage
(how a job calls its stage function with the rule's keys)."""

import pytest
from snakemake.iocontainers import InputFiles, OutputFiles, Params

import dds.runtime
from dds import layout
from dds.runtime import run_stage


def test_parse_returns_wildcards_with_numbers_as_numbers():
    path = layout.fill(
        layout.DENOISED,
        dataset="digits",
        denoiser="ddpm",
        sigma=0.25,
        classifier="vit",
        attack="pgd_linf",
        epsilon=0.1,
        shard=3,
    )
    values = layout.parse(layout.DENOISED, path)
    assert values == {
        "dataset": "digits",
        "denoiser": "ddpm",
        "sigma": 0.25,
        "classifier": "vit",
        "attack": "pgd_linf",
        "epsilon": 0.1,
        "shard": 3,
    }


def test_parse_refuses_a_path_of_another_pattern():
    with pytest.raises(ValueError, match="is not a path of the pattern"):
        layout.parse(layout.DENOISED, "results/digits/classifiers/vit.safetensors")


def test_parse_with_choices_splits_names_holding_dashes():
    pattern = layout.ACCURACY_PNG
    path = layout.fill(pattern, dataset="c", classifier="resnet50-cbam", attack="pgd", denoiser="improved-diffusion")
    choices = {"classifier": ["resnet50", "resnet50-cbam"], "denoiser": ["improved-diffusion"], "attack": ["pgd"]}
    assert layout.parse(pattern, path, **choices)["classifier"] == "resnet50-cbam"


def test_group_keys_files_by_their_own_names_in_shard_order():
    def path(eps, shard):
        return layout.fill(layout.ADVERSARIAL, dataset="d", classifier="c", attack="a", epsilon=eps, shard=shard)

    # given out of order: the groups come from the paths, not from the list's order
    paths = [path(0.1, 1), path(0.0, 1), path(0.1, 0), path(0.0, 0)]
    assert layout.group(paths, layout.ADVERSARIAL, "epsilon") == {
        0.1: [path(0.1, 0), path(0.1, 1)],
        0.0: [path(0.0, 0), path(0.0, 1)],
    }


class Job:
    """What a Snakemake script sees as `snakemake`, for one made-up job."""

    def __init__(self, tmp_path, inputs: dict, outputs: dict, params: dict):
        self.input = InputFiles(fromdict=inputs)
        self.output = OutputFiles(fromdict=outputs)
        self.params = Params(fromdict=params)
        self.log = [str(tmp_path / "job.log")]
        self.threads = 3


@pytest.fixture(autouse=True)
def setups(monkeypatch):
    """The jobs' set-up calls, recorded instead of run (it would take over this process's stderr,
    logging and torch threads)."""
    calls = []
    monkeypatch.setattr(dds.runtime, "setup_job", lambda log, threads: calls.append((log, threads)))
    return calls


def test_run_stage_sets_up_the_job_then_passes_the_rules_keys_as_keywords(tmp_path, setups):
    seen = {}

    def stage(*, images, denoised, sigma):
        seen.update(images=images, denoised=denoised, sigma=sigma)

    run_stage(stage, Job(tmp_path, {"images": "in.parquet"}, {"denoised": "out.parquet"}, {"sigma": 0.5}))
    assert seen == {"images": "in.parquet", "denoised": "out.parquet", "sigma": 0.5}
    assert setups == [(str(tmp_path / "job.log"), 3)]


def test_run_stage_refuses_a_key_named_twice_and_a_missing_one(tmp_path):
    def stage(*, images, sigma):
        pass

    with pytest.raises(TypeError, match="names 'images' twice"):
        run_stage(stage, Job(tmp_path, {"images": "a"}, {"images": "b"}, {"sigma": 1.0}))
    with pytest.raises(TypeError, match="sigma"):
        run_stage(stage, Job(tmp_path, {"images": "a"}, {}, {}))


def test_a_job_over_several_sets_needs_one_file_per_set():
    layout.expect_files("blur_noise", 2, "2 noise levels", predictions=["a", "b"])
    with pytest.raises(
        ValueError, match=r"denoise_and_classify: 2 image sets at 3 sigmas need 6 predictions files, got 5"
    ):
        layout.expect_files(
            "denoise_and_classify", 6, "2 image sets at 3 sigmas", denoised=list("abcdef"), predictions=list("abcde")
        )


def test_a_jobs_usage_record_lies_beside_its_log():
    """dds.jobs writes it beside the log (log + .usage.json); the report finds it from the
    benchmark file, relative or absolute."""
    for pattern in (layout.DENOISE_JOB, layout.CERTIFICATES_ADVERSARIAL, layout.MANIFEST):
        where = dict(dataset="digits", denoiser="ddpm", classifier="vit", shard=0, attack="pgd", epsilon=0.1, sigma=0.5)
        bench, log = layout.fill(layout.benchmark(pattern), **where), layout.fill(layout.log(pattern), **where)
        assert layout.usage(bench) == log + layout.USAGE_SUFFIX
        assert layout.usage("/runs/a/" + bench) == "/runs/a/" + log + layout.USAGE_SUFFIX
    with pytest.raises(ValueError, match="not a benchmark file"):
        layout.usage("results/digits/tables/accuracy.parquet")
