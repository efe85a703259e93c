"""The published setups: the presets validate, the config rules they rely on hold, and a dry
run of each lists the expected jobs on a machine without the data or the checkpoints."""

import copy
import shutil

import pytest
import yaml

from conftest import REPO, snakemake, workflow_copy
from dds.config import ConfigError, validate
from dds.data.datasets import CIFAR10_FILES
from test_incremental import counts, planned

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def preset(name: str) -> dict:
    return yaml.safe_load((REPO / "presets" / f"{name}.yaml").read_text())


@pytest.mark.parametrize("name", ["cifar10-paper", "imagenet-paper"])
def test_presets_validate(name):
    config = validate(preset(name), SCHEMA)
    attack = config["attacks"]["pgd"]
    assert (attack["steps"], attack["step_mode"], attack["random_start"]) == (5, "absolute", False)
    assert config["dataset"]["eval_size"] == 1000 and config["certify"]["n0"] == 100
    assert config["certify"]["n"] == {"cifar10-paper": 100_000, "imagenet-paper": 10_000}[name]


def test_dataset_defaults_and_foreign_keys():
    config = validate(preset("cifar10-paper") | {"dataset": {"name": "cifar10", "image_size": 32}}, SCHEMA)
    assert config["dataset"] == {
        "name": "cifar10",
        "image_size": 32,
        "root": "data",
        "download": False,
        "eval_size": 300,
        "shard_size": 300,
    }
    imagenet = validate(preset("imagenet-paper"), SCHEMA)["dataset"]
    assert imagenet["require_all_classes"] is True and "labels_file" not in imagenet


KEY = object()  # stands for the key the case sets, quoted: the error names it
URL = "https://example.org/x.pt"
# case: (the key set, as a dotted path; its value, or a function of the key's parent giving it;
# the texts the error must hold)
BAD = {
    "imagenet key on cifar10": ("dataset.labels_file", "x.txt", [KEY, "imagenet only", "not to cifar10"]),
    "md5 table missing a file": ("dataset.md5", {"test_batch": "0" * 32}, [KEY, "'data_batch_1' is a required"]),
    "md5 that is not one": ("dataset.md5", {n: "0" * 31 for n in CIFAR10_FILES}, ["'dataset.md5.test_batch'"]),
    "cifar10 at another size": ("dataset.image_size", 64, [KEY, "32x32", "resize"]),
    "pretrained on cifar10": ("classifiers.resnet50.pretrained", True, [KEY, "1000 ImageNet-1k classes"]),
    "weights without pretrained": ("classifiers.resnet50.weights", "w.pth", [KEY, "pretrained: true"]),
    "unknown checkpoint without its flags": (
        "denoisers.improved-diffusion.checkpoint",
        "ddpm_cifar10",
        [KEY, "256x256_diffusion_uncond", "a model of your own", "image_size, num_channels"],
    ),
    "flag of another architecture": (
        "denoisers.improved-diffusion.num_channels",
        100,
        [KEY, "multiple of 32"],
    ),
    "checkpoint at another size": (
        "denoisers.improved-diffusion.checkpoint",
        "256x256_diffusion_uncond",
        ["denoises 256x256", "dataset.image_size is 32"],
    ),
    "short sha256": ("denoisers.improved-diffusion.sha256", "abc", [KEY, "64 lower-case hex"]),
    "DDPM key on a checkpoint": (
        "denoisers.improved-diffusion.steps",
        10,
        ["'denoisers.improved-diffusion'", "'steps' was unexpected"],
    ),
    "two sources for one file": (
        "denoisers.copy",
        lambda denoisers: {**denoisers["improved-diffusion"], "url": URL},
        [KEY, "one checkpoint file has one source"],
    ),
    "two architectures for one file": (
        "denoisers.copy",
        lambda denoisers: {**denoisers["improved-diffusion"], "num_res_blocks": 2},
        [KEY, "one architecture"],
    ),
    "bad resize mode": ("classifiers.resnet50.resize.mode", "area", [KEY, "'bicubic'"]),
    "reference of an unknown classifier": (
        "report.reference.classifiers.vit",
        "vit",
        ["'report.reference.classifiers'", "'vit'"],
    ),
    "reference of an unknown denoiser": ("report.reference.denoiser", "ddpm", [KEY, "'ddpm'"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_settings_name_the_key(case):
    config = copy.deepcopy(preset("cifar10-paper"))
    path, value, texts = BAD[case]
    *parents, key = path.split(".")
    parent = config
    for part in parents:
        parent = parent[part]
    parent[key] = value(parent) if callable(value) else value
    with pytest.raises(ConfigError) as info:
        validate(config, SCHEMA)
    for text in texts:
        text = f"'{path}'" if text is KEY else text
        assert text in str(info.value), f"{text!r} not in {info.value}"


def test_imagenet_needs_its_folder():
    config = preset("imagenet-paper")
    del config["dataset"]["root"]
    with pytest.raises(ConfigError, match=r"'dataset\.root': imagenet needs the folder"):
        validate(config, SCHEMA)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The workflow and its presets in an empty directory: no data, no checkpoints."""
    path = workflow_copy(tmp_path_factory.mktemp("presets"), yaml.safe_load((REPO / "config.yaml").read_text()))
    shutil.copytree(REPO / "presets", path / "presets")
    return path


# the jobs a dry run of each preset plans, per rule: (cifar10-paper, imagenet-paper).
# cifar10: 2 classifiers x 6 epsilons (0 included) x 4 shards of 250 = 48 attacked shards;
# denoising, undefended classification and each blur rule: one job per (classifier, shard) over
# every set (and sigma, noise level); certification: 5 sigmas x 4 shards, both classifiers per job.
# imagenet: 7 epsilons x 10 shards of 100 = 70 attacked shards, one job per shard for each of
# those rules; certification: 4 sigmas x 10 shards; one classifier: no transfer.
PRESET_JOBS = {
    "sample": (1, 1),
    "fetch_denoiser": (1, 1),
    "openai_denoiser": (1, 1),
    "train_classifier": (2, 0),
    "pretrained_classifier": (0, 1),
    "attack": (48, 70),
    "denoise_and_classify": (8, 10),
    "classify_undefended": (8, 10),
    "accuracy_table": (2, 1),
    "certify_clean": (20, 40),
    "certified_table": (2, 1),
    "blur_noise": (8, 10),
    "blur_adversarial": (8, 10),
    "blur_table": (2, 1),
    "defences_table": (1, 1),
    "transfer_matrix": (2, 0),
    "transfer_table": (1, 0),
    "accuracy_summary": (1, 1),
    "examples_figure": (1, 1),
    "report": (1, 1),
    "all": (1, 1),
}
PRESETS = ["cifar10-paper", "imagenet-paper"]
CHECKPOINT = {"cifar10-paper": "cifar10_uncond_50M_500K", "imagenet-paper": "256x256_diffusion_uncond"}


@pytest.mark.parametrize("name", PRESETS)
def test_preset_dry_run(workdir, name):
    jobs = planned(workdir, "--configfile", f"presets/{name}.yaml")
    column = PRESETS.index(name)
    assert counts(jobs) == {rule: n[column] for rule, n in PRESET_JOBS.items() if n[column]}
    assert [w for rule, w in jobs if rule == "fetch_denoiser"] == [{"checkpoint": CHECKPOINT[name]}]
    if name == "cifar10-paper":  # the default config's models are not there: a preset replaces config.yaml
        assert {w["classifier"] for rule, w in jobs if rule == "train_classifier"} == {"resnet50", "resnet50-cbam"}


def test_a_preset_takes_overlays_and_a_copy_the_user_has(workdir):
    (workdir / "data").mkdir(exist_ok=True)
    (workdir / "data" / "mine.pt").write_bytes(b"not checked by a dry run")
    (workdir / "overlay.yaml").write_text(
        "denoisers:\n  improved-diffusion:\n    path: data/mine.pt\nsigmas: [0.25]\ncertify:\n  enabled: false\n"
    )
    jobs = counts(planned(workdir, "--configfile", "presets/cifar10-paper.yaml", "overlay.yaml"))
    assert "fetch_denoiser" not in jobs and jobs["openai_denoiser"] == 1 and jobs["denoise_and_classify"] == 8


def test_a_missing_copy_is_named_before_any_job(workdir):
    (workdir / "absent.yaml").write_text("denoisers:\n  improved-diffusion:\n    path: data/absent.pt\n")
    done = snakemake(workdir, "-n", "--configfile", "presets/cifar10-paper.yaml", "absent.yaml")
    assert done.returncode != 0
    assert "'denoisers.improved-diffusion.path': data/absent.pt not found" in done.stdout + done.stderr


def test_a_bad_flag_stops_the_run_before_any_job(workdir):
    (workdir / "narrow.yaml").write_text("denoisers:\n  improved-diffusion:\n    num_channels: 48\n")
    done = snakemake(workdir, "-n", "--configfile", "presets/cifar10-paper.yaml", "narrow.yaml")
    assert done.returncode != 0
    assert "'denoisers.improved-diffusion.num_channels'" in done.stdout + done.stderr
    assert "multiple of 32" in done.stdout + done.stderr


def test_a_known_checkpoint_at_a_reduced_width_from_a_copy(workdir):
    """How the rehearsal runs the ImageNet preset: guided-diffusion's flags narrowed, the
    preset's url kept, a file of that width given by path."""
    (workdir / "data").mkdir(exist_ok=True)
    (workdir / "data" / "narrow.pt").write_bytes(b"not checked by a dry run")
    (workdir / "narrow.yaml").write_text(
        "denoisers:\n  guided-diffusion:\n    num_channels: 32\n    num_head_channels: 32\n"
        "    path: data/narrow.pt\ncertify:\n  enabled: false\n"
    )
    jobs = counts(planned(workdir, "--configfile", "presets/imagenet-paper.yaml", "narrow.yaml"))
    assert "fetch_denoiser" not in jobs and jobs["openai_denoiser"] == 1
