"""Official checkpoints: the download (from a local HTTP server and a file:// URL, verified,
nothing left behind on a mismatch), the check that writes the denoiser reference, and the
sha256 verified again at every later load."""

import dataclasses
import functools
import hashlib
import http.server
import json
import logging
import threading

import pytest
import torch

from dds.diffusion import checkpoints
from dds.diffusion.loading import load_denoiser
from dds.diffusion.one_shot import sigma_timestep
from dds.diffusion.schedules import alphas_cumprod
from dds.fetch import download
from dds.io import DataFileError, ImageSet, load_tensors, read_images, read_json, read_table, write_images
from dds.models.classifiers import build_classifier, save_classifier
from dds.pipeline.denoise import denoise_and_classify
from dds.pipeline.denoisers import fetch_denoiser, openai_denoiser
from test_openai_unet import official_state_dict, small_spec

NAME = "cifar10_uncond_50M_500K"
PAYLOAD = bytes(range(256)) * 5000  # 1.28 MB: several chunks


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A local HTTP server for the files of a temporary folder: (base URL, folder)."""
    folder = tmp_path_factory.mktemp("served")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", folder
    httpd.shutdown()


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir())


def test_download_verifies_and_writes(server, tmp_path):
    base, served = server
    (served / "ok.pt").write_bytes(PAYLOAD)
    target = tmp_path / "checkpoints" / "ok.pt"
    expected = hashlib.sha256(PAYLOAD).hexdigest()
    assert download(f"{base}/ok.pt", target, expected) == expected
    assert target.read_bytes() == PAYLOAD
    assert leftovers(target.parent) == ["ok.pt"]


def test_wrong_sha256_leaves_nothing_behind(server, tmp_path):
    base, served = server
    (served / "other.pt").write_bytes(PAYLOAD)
    target = tmp_path / "other.pt"
    with pytest.raises(DataFileError) as info:
        download(f"{base}/other.pt", target, "0" * 64)
    message = str(info.value)
    assert "sha256 mismatch" in message and "0" * 64 in message and hashlib.sha256(PAYLOAD).hexdigest() in message
    assert f"{base}/other.pt" in message and "nothing was written" in message
    assert leftovers(tmp_path) == []  # neither the file nor its temporary download


def test_unreachable_and_missing_urls_say_what_to_do(server, tmp_path):
    base, _ = server
    for url in (f"{base}/absent.pt", "http://127.0.0.1:9/x.pt"):  # 404; a closed port
        with pytest.raises(DataFileError, match=r"could not download .*To fix: download .* put it at"):
            download(url, tmp_path / "x.pt", "a" * 64)
    assert leftovers(tmp_path) == []


def test_file_url_without_sha256_logs_the_digest(tmp_path, caplog):
    source = tmp_path / "source.pt"
    source.write_bytes(PAYLOAD)
    target = tmp_path / "out" / "copy.pt"
    with caplog.at_level(logging.WARNING):
        fetch_denoiser(checkpoint=target, url=source.as_uri(), sha256=None)
    assert target.read_bytes() == PAYLOAD
    assert f"sha256: {hashlib.sha256(PAYLOAD).hexdigest()}" in caplog.text


# the CIFAR-10 checkpoint's official keys at a reduced width (two different draws)
STATES = [official_state_dict(NAME, seed) for seed in (0, 1)]


@pytest.fixture
def tiny_checkpoint(tmp_path, monkeypatch):
    """A reduced-width checkpoint saved as a plain state dict with torch.save, and the
    registry's spec of that name narrowed to match."""
    monkeypatch.setitem(checkpoints.CHECKPOINTS, NAME, small_spec(NAME))
    path = tmp_path / "tiny.pt"
    torch.save(STATES[0], path)
    return path


def describe(path, tmp_path, sha256=None):
    spec = {"kind": "openai", "checkpoint": NAME, "url": path.as_uri(), "sha256": sha256}
    weights, metrics = tmp_path / "denoiser.safetensors", tmp_path / "denoiser.json"
    openai_denoiser(checkpoint=path, weights=weights, metrics=metrics, name="improved", spec=spec)
    return weights, read_json(metrics)


def test_the_reference_records_the_checkpoint_and_denoises(tiny_checkpoint, tmp_path):
    digest = hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    weights, metrics = describe(tiny_checkpoint, tmp_path, digest)
    tensors, meta = load_tensors(weights)
    assert tensors == {} and meta == {
        "kind": "openai",
        "spec": meta["spec"],
        "path": str(tiny_checkpoint),
        "sha256": digest,
    }
    # the resolved architecture and diffusion: loading needs no config
    assert checkpoints.checkpoint_spec(json.loads(meta["spec"])) == dataclasses.replace(
        small_spec(NAME), url=tiny_checkpoint.as_uri()
    )
    assert metrics["sha256_from"] == "config" and metrics["num_timesteps"] == 4000
    assert metrics["parameters"] == sum(v.numel() for v in STATES[0].values())
    denoiser = load_denoiser(weights, 0.25, "cpu")  # dispatches on the file's kind
    assert denoiser.eps_model.rescale_timesteps  # the checkpoint's own timestep convention
    assert denoiser.t == sigma_timestep(alphas_cumprod("cosine", 4000), 0.25)
    images = ImageSet(torch.arange(3), torch.tensor([0, 1, 2]), torch.rand(3, 3, 32, 32))
    write_images(tmp_path / "in.parquet", images)
    clf = tmp_path / "clf.safetensors"
    save_classifier(
        build_classifier("resnet18", {}, 3, 10, [0.5] * 3, [0.25] * 3), clf, {"model": "resnet18", "kwargs": {}}, 3, 10
    )
    denoise_and_classify(
        images=[tmp_path / "in.parquet"],
        denoiser=weights,
        classifier=clf,
        denoised=[tmp_path / "out.parquet"],
        predictions=[tmp_path / "predictions.parquet"],
        sigmas=[0.25],
        seed=0,
        batch_size=2,
        device="cpu",
    )
    out = read_images(tmp_path / "out.parquet")
    assert out.images.shape == (3, 3, 32, 32) and torch.equal(out.idx, images.idx)
    assert read_table(tmp_path / "predictions.parquet")["idx"].tolist() == [0, 1, 2]


def test_without_sha256_the_first_use_is_pinned(tiny_checkpoint, tmp_path):
    weights, metrics = describe(tiny_checkpoint, tmp_path)
    assert metrics["sha256_from"] == "first use"
    assert metrics["sha256"] == hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    # a file changed after the check is refused at every later load
    torch.save(STATES[1], tiny_checkpoint)
    with pytest.raises(DataFileError, match=r"sha256 mismatch: expected " + metrics["sha256"]):
        load_denoiser(weights, 0.5, "cpu")


def test_a_wrong_sha256_in_the_config_stops_the_check(tiny_checkpoint, tmp_path):
    with pytest.raises(DataFileError, match="sha256 mismatch"):
        describe(tiny_checkpoint, tmp_path, "f" * 64)
    assert not (tmp_path / "denoiser.safetensors").exists()
