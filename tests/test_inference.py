"""dds.evaluation.inference: the `inference` config section resolved per device, and models prepared
with it (layout, autocast, compilation) giving fp32 results that agree with plain fp32."""

import copy
import shutil

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, TINY_UNET
from dds.config import ConfigError
from dds.diffusion import ddpm
from dds.diffusion.one_shot import OneShotDenoiser
from dds.evaluation.inference import DEFAULTS, Inference, resolve
from dds.io import ImageSet, read_table, write_images
from dds.models import classifiers
from dds.pipeline.classify import classify_undefended
from dds.smoothing.sampling import sample_counts

CPU = torch.device("cpu")
FP32 = resolve({"precision": "fp32", "channels_last": False}, "cpu")
BF16 = resolve({"precision": "bf16"}, "cpu")

# bf16 autocast against fp32 on the CPU. Measured on these tiny random models: denoised
# images differ by at most 0.008 (sigma 0.25) and 0.025 (sigma 1), predictions agree on
# >= 96% of 128 images; on the demo's trained DDPM and classifiers (512 digits): at most
# 0.0064 / 0.0126 / 0.0283 at sigma 0.25 / 0.5 / 1 (mean <= 0.0022), agreement >= 99.2%.
DENOISED_TOLERANCE = 0.05
DENOISED_MEAN_TOLERANCE = 0.005
PREDICTION_AGREEMENT = 0.95


def tiny_denoiser(settings: Inference | None, sigma: float) -> OneShotDenoiser:
    """A tiny random DDPM's one-shot denoiser, its network prepared with `settings` (None: as is)."""
    torch.manual_seed(0)
    eps = ddpm.DiffusersEps(ddpm.build_unet(8, 1, TINY_UNET)).eval()
    schedule = ddpm.build_scheduler({"num_train_timesteps": 1000, "beta_schedule": "linear"})
    return OneShotDenoiser(eps if settings is None else settings.prepare(eps), schedule.alphas_cumprod, sigma)


def tiny_classifier(model="resnet18", seed=0, **kwargs):
    torch.manual_seed(seed)
    return classifiers.build_classifier(model, kwargs, 1, 10, [0.5], [0.5]).eval()


def test_schema_defaults_are_the_module_defaults():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    props = schema["properties"]["inference"]["properties"]
    assert {k: v["default"] for k, v in props.items()} == DEFAULTS


def test_cpu_defaults_fp32_channels_last_eager():
    assert resolve(None, "cpu") == Inference(CPU, torch.float32, channels_last=True, compile=False)
    assert resolve(DEFAULTS, "cpu") == resolve(None, "cpu")


def test_bf16_on_cpu_keeps_contiguous_layout_unless_asked():
    assert BF16.dtype == torch.bfloat16 and not BF16.channels_last
    assert resolve({"precision": "bf16", "channels_last": True}, "cpu").channels_last


def test_fp16_on_cpu_is_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"inference\.precision.*fp16.*CUDA"):
        resolve({"precision": "fp16"}, "cpu")


def test_unknown_values_are_refused_naming_the_key():
    with pytest.raises(ConfigError, match=r"inference\.precision.*allowed"):
        resolve({"precision": "fp8"}, "cpu")
    with pytest.raises(ConfigError, match=r"inference\.channels_last.*allowed"):
        resolve({"channels_last": "yes"}, "cpu")


def test_config_validation_fills_and_checks_the_section():
    from dds.config import validate

    schema = REPO / "workflow/schemas/config.schema.yaml"
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config.pop("inference", None)
    assert validate(config, schema)["inference"] == DEFAULTS
    config["inference"] = {"precision": "half"}
    with pytest.raises(ConfigError, match=r"inference\.precision"):
        validate(config, schema)


@pytest.mark.parametrize(
    "settings",
    [BF16, resolve({"precision": "bf16", "channels_last": True}, "cpu"), resolve(None, "cpu")],
    ids=["bf16", "bf16-channels-last", "default"],
)
def test_prepared_outputs_are_fp32_contiguous_on_cpu_without_grad(settings, digits8):
    model = settings.prepare(tiny_classifier().train())
    assert not model.training
    logits = model(digits8.images[:16])
    assert logits.dtype == torch.float32 and logits.device == CPU and not logits.requires_grad
    denoised = tiny_denoiser(settings, 0.5)(digits8.images[:16], torch.randn(16, 1, 8, 8))
    assert denoised.dtype == torch.float32 and denoised.is_contiguous()


def test_channels_last_fp32_matches_plain(digits8):
    x, noise = digits8.images[:64], torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    cl = resolve({"precision": "fp32", "channels_last": True}, "cpu")
    torch.testing.assert_close(tiny_denoiser(cl, 0.5)(x, noise), tiny_denoiser(FP32, 0.5)(x, noise), atol=1e-5, rtol=0)
    torch.testing.assert_close(
        cl.prepare(tiny_classifier())(x), FP32.prepare(tiny_classifier())(x), atol=1e-4, rtol=1e-4
    )


@pytest.mark.parametrize("sigma", [0.25, 1.0])
def test_bf16_autocast_agrees_with_fp32(sigma, digits8):
    x = digits8.images[:128]
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    exact, mixed = tiny_denoiser(FP32, sigma)(x, noise), tiny_denoiser(BF16, sigma)(x, noise)
    diff = (exact - mixed).abs()
    assert diff.max() <= DENOISED_TOLERANCE and diff.mean() <= DENOISED_MEAN_TOLERANCE
    for model in (tiny_classifier(), tiny_classifier("vit_tiny_patch16_224", img_size=8, patch_size=2, depth=2)):
        agree = FP32.prepare(copy.deepcopy(model))(exact).argmax(1) == BF16.prepare(model)(mixed).argmax(1)
        assert agree.float().mean() >= PREDICTION_AGREEMENT


def test_fused_counts_identical_with_the_default_cpu_settings(digits8):
    """The workflow's CPU settings (fp32, channels_last) count exactly what plain models count."""
    default = resolve(None, "cpu")
    plain = {"a": tiny_classifier(), "b": tiny_classifier(seed=1)}
    prepared = {name: default.prepare(copy.deepcopy(m)) for name, m in plain.items()}
    image = digits8.images[3]
    want = sample_counts(tiny_denoiser(None, 0.5), plain, image, 3, 150, "estimation", 0, 64, CPU)
    got = sample_counts(tiny_denoiser(default, 0.5), prepared, image, 3, 150, "estimation", 0, 64, CPU)
    for name in plain:
        np.testing.assert_array_equal(got[name], want[name])


def test_predict_stage_runs_with_the_config_settings(tmp_path, digits8):
    data = digits8.subset(0, 32)
    write_images(tmp_path / "images.parquet", ImageSet(data.idx, data.labels, data.images))
    classifiers.save_classifier(tiny_classifier(), tmp_path / "clf.safetensors", {"model": "resnet18"}, 1, 10)
    tables = {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / f"{precision}.parquet"
        classify_undefended(
            images=[tmp_path / "images.parquet"],
            classifier=tmp_path / "clf.safetensors",
            predictions=[out],
            batch_size=16,
            device="cpu",
            inference={"precision": precision, "channels_last": "auto", "compile": False},
        )
        tables[precision] = read_table(out)
        assert set(tables[precision]["precision"]) == {precision}
    assert tables["bf16"]["logits"].iloc[0].dtype == np.float32
    assert (tables["fp32"]["pred"] == tables["bf16"]["pred"]).mean() >= PREDICTION_AGREEMENT


def _has_compiler() -> bool:
    return any(shutil.which(cc) for cc in ("g++", "c++", "clang++"))


@pytest.mark.compile
@pytest.mark.skipif(not _has_compiler(), reason="torch.compile's CPU backend needs a C++ compiler (g++)")
def test_compiled_model_matches_eager(digits8):
    compiled = resolve({"precision": "fp32", "channels_last": False, "compile": True}, "cpu")
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 10)
    )
    x = digits8.images[:8]
    want = FP32.prepare(copy.deepcopy(model))(x)
    prepared = compiled.prepare(model)
    torch.testing.assert_close(prepared(x), want, atol=1e-5, rtol=1e-5)
    assert prepared.compile_seconds is not None
