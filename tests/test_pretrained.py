"""Pretrained timm classifiers: weights from a file named in the config (safetensors or
.pth), the pretrained preprocessing inside the model, the stage's round trip, and the
message when the weights are neither cached nor downloadable."""

import json
import subprocess
import sys

import pytest
import timm
import torch
from safetensors.torch import save_file

from dds.io import DataFileError, read_json
from dds.models.classifiers import load_classifier, resize_images
from dds.models.pretrained import load_pretrained
from dds.pipeline.classifiers import pretrained_classifier

# a tiny timm model with a pretrained config: 160x160 input, bicubic, mean and std 0.5
MODEL = "test_vit.r160_in1k"


@pytest.fixture(scope="module")
def reference_net():
    torch.manual_seed(0)
    return timm.create_model(MODEL, pretrained=False).eval()


@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_weights_file_and_pretrained_preprocessing(reference_net, tmp_path, suffix):
    path = tmp_path / f"weights{suffix}"
    state = reference_net.state_dict()
    save_file(state, str(path)) if suffix == ".safetensors" else torch.save(state, path)
    model = load_pretrained("vit", MODEL, {}, weights=path).eval()
    assert model.resize == {"size": 160, "mode": "bicubic"}
    x = torch.rand(2, 3, 64, 64)  # the dataset's size: resized inside the model
    expected = reference_net((resize_images(x, 160, "bicubic") - 0.5) / 0.5)
    with torch.no_grad():
        assert torch.allclose(model(x), expected, atol=1e-5)


def test_the_config_can_override_the_resize(reference_net, tmp_path):
    save_file(reference_net.state_dict(), str(tmp_path / "w.safetensors"))
    model = load_pretrained("vit", MODEL, {}, tmp_path / "w.safetensors", {"size": 160, "mode": "bilinear"})
    assert model.resize == {"size": 160, "mode": "bilinear"}


def test_stage_stores_a_classifier_every_stage_can_load(reference_net, tmp_path):
    save_file(reference_net.state_dict(), str(tmp_path / "w.safetensors"))
    spec = {"model": MODEL, "kwargs": {}, "pretrained": True, "weights": str(tmp_path / "w.safetensors")}
    pretrained_classifier(
        source=spec["weights"],
        weights=tmp_path / "vit.safetensors",
        metrics=tmp_path / "vit.json",
        name="vit",
        spec=spec,
    )
    model = load_classifier(tmp_path / "vit.safetensors")
    assert model.resize == {"size": 160, "mode": "bicubic"}
    x = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x), reference_net((resize_images(x, 160, "bicubic") - 0.5) / 0.5), atol=1e-5)
    metrics = read_json(tmp_path / "vit.json")
    assert metrics["source"] == spec["weights"] and metrics["input_size"] == 160 and metrics["mean"] == [0.5] * 3


def test_missing_weights_file_names_it_and_the_config_key(tmp_path):
    with pytest.raises(DataFileError) as info:
        load_pretrained("vit", MODEL, {}, weights=tmp_path / "absent.safetensors")
    message = str(info.value)
    assert "absent.safetensors" in message and "classifiers.vit.weights" in message


def test_a_model_without_pretrained_weights_is_refused():
    with pytest.raises(ValueError, match="no pretrained weights"):
        load_pretrained("x", "resnet18d.not_a_tag", {})


def test_offline_with_an_empty_cache_explains_what_to_do(tmp_path):
    """A fresh process with HF_HUB_OFFLINE=1 and an empty cache (the environment is read at import)."""
    code = (
        "import json\nfrom dds.models.pretrained import load_pretrained\nfrom dds.io import DataFileError\n"
        f"try:\n    load_pretrained('coatnet', {MODEL!r}, {{}})\n"
        "except DataFileError as err:\n    print(json.dumps(str(err)))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf"),
        "TORCH_HOME": str(tmp_path / "torch"),
        "OMP_NUM_THREADS": "1",
    }
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    message = json.loads(done.stdout.strip().splitlines()[-1])
    assert f"timm model '{MODEL}'" in message and "HF_HUB_OFFLINE is set" in message
    assert f"timm.create_model('{MODEL}', pretrained=True)" in message  # how to fill the cache
    assert str(tmp_path / "hf") in message  # where the cache is
    assert f"https://huggingface.co/timm/{MODEL}/resolve/main/model.safetensors" in message
    assert "classifiers.coatnet.weights" in message
