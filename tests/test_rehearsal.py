"""The rehearsal's parts: its stand-ins are read by the presets' own loaders, its local server
serves what fetch_denoiser downloads, and its overlays make configs that validate and plan
every rule of the preset. The rehearsal itself runs in tests/test_gpu_check.py (the GPU
check's CPU smoke test runs the CIFAR-10 rehearsal)."""

import dataclasses

import pytest
import torch
import yaml
from safetensors.torch import load_file

from conftest import REPO, workflow_copy
from dds.data.datasets import index_imagenet_val, load_imagenet_val
from dds.diffusion.checkpoints import CHECKPOINTS
from dds.diffusion.official import load_openai_checkpoint
from dds.fetch import download
from dds.io import sha256_file
from dds.models.pretrained import load_pretrained
from dds.rehearsal import overlays, run, standins
from test_incremental import counts, planned
from test_presets import PRESET_JOBS, PRESETS

SMALL_UNET = dataclasses.replace(
    CHECKPOINTS["cifar10_uncond_50M_500K"],
    unet=dataclasses.replace(CHECKPOINTS["cifar10_uncond_50M_500K"].unet, model_channels=32, num_res_blocks=1),
)


def test_imagenet_standin_is_the_flat_layout_with_devkit_labels(tmp_path):
    truth = standins.write_imagenet_val(tmp_path / "val", tmp_path / "devkit", [0, 207, 980], per_class=2, seed=1)
    files = index_imagenet_val(tmp_path / "val", truth, require_all_classes=False)
    assert [p.name for p in files.paths][:2] == ["ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000002.JPEG"]
    assert sorted(files.labels.tolist()) == [0, 0, 207, 207, 980, 980]
    # the ids in the ground truth are not the class indices: meta.mat maps them
    ids = [int(line) for line in truth.read_text().split()]
    assert sorted(ids) == [20, 20, 793, 793, 1000, 1000]
    data = load_imagenet_val(tmp_path / "val", 3, seed=0, image_size=64, labels_file=truth, require_all_classes=False)
    assert data.images.shape == (3, 3, 64, 64) and sorted(data.labels.tolist()) == [0, 207, 980]


def test_openai_standin_loads_strictly_and_is_seeded(tmp_path):
    standins.write_openai_checkpoint(tmp_path / "a.pt", SMALL_UNET, seed=0)
    standins.write_openai_checkpoint(tmp_path / "b.pt", SMALL_UNET, seed=0)
    state = torch.load(tmp_path / "a.pt", weights_only=True)
    again = torch.load(tmp_path / "b.pt", weights_only=True)
    assert all(torch.equal(v, again[k]) for k, v in state.items())
    assert all(torch.is_tensor(v) for v in state.values())  # a plain state dict, as published
    eps, _ = load_openai_checkpoint(tmp_path / "a.pt", SMALL_UNET, sha256_file(tmp_path / "a.pt"))
    assert all(torch.equal(v, state[k]) for k, v in eps.unet.state_dict().items())


def test_timm_standin_loads_as_pretrained_weights(tmp_path):
    path = tmp_path / f"{overlays.SMALL_COATNET}.safetensors"
    standins.write_timm_weights(path, overlays.SMALL_COATNET, seed=0)
    model = load_pretrained("coatnet", overlays.SMALL_COATNET, {}, weights=path)
    saved = load_file(str(path))
    assert all(torch.equal(v, saved[k]) for k, v in model.net.state_dict().items())


def test_the_local_server_serves_what_fetch_denoiser_downloads(tmp_path):
    (tmp_path / "served").mkdir()
    (tmp_path / "served" / "x.pt").write_bytes(b"weights" * 1000)
    with run.serve(tmp_path / "served") as url:
        assert url.startswith("http://127.0.0.1:")
        digest = download(f"{url}/x.pt", tmp_path / "got.pt", sha256_file(tmp_path / "served" / "x.pt"))
    assert digest == sha256_file(tmp_path / "got.pt") and (tmp_path / "got.pt").read_bytes() == b"weights" * 1000


def test_planned_jobs_reads_rules_and_outputs():
    text = (
        "rule attack:\n    input: a.parquet\n    output: b.parquet, c.json\n    jobid: 3\n"
        "localrule all:\n    input: b.parquet\n    jobid: 0\n"
    )
    assert run.planned_jobs(text) == [
        {"rule": "attack", "output": ["b.parquet", "c.json"]},
        {"rule": "all", "output": []},
    ]


@pytest.mark.parametrize("preset", overlays.PRESETS)
def test_overlays_validate_and_keep_the_presets_rules(tmp_path, monkeypatch, preset):
    """Each overlay (stand-ins at their smallest, the UNet of the CIFAR-10 checkpoint made
    small here to keep the test fast) validates over its preset and plans the same rules."""
    monkeypatch.setattr(standins, "write_openai_checkpoint", lambda path, spec, seed: path.write_bytes(b"x"))
    monkeypatch.setattr(standins, "write_timm_weights", lambda path, model, seed: path.write_bytes(b"x"))
    overlay = overlays.OVERLAYS[preset](tmp_path, "http://127.0.0.1:1", overlays.SCALE[preset]["smallest"], "cpu")
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(overlay))
    files = [REPO / "presets" / f"{preset}.yaml", tmp_path / "overlay.yaml"]
    config = run.merged_config(files)
    assert config["dataset"]["eval_size"] == {"cifar10-paper": 10, "imagenet-paper": 4}[preset]
    workdir = workflow_copy(tmp_path / "wf", yaml.safe_load((REPO / "config.yaml").read_text()))
    rehearsed = counts(planned(workdir, "--configfile", *map(str, files)))
    column = PRESETS.index(preset)
    full = {rule for rule, n in PRESET_JOBS.items() if n[column]}  # the preset's own dry run
    # ImageNet's reduced UNet is given by path: it is the one thing not downloaded
    assert set(rehearsed) == full - ({"fetch_denoiser"} if preset == "imagenet-paper" else set())
