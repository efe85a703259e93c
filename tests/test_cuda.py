"""What only a GPU can show: the inference settings' CUDA defaults, results on CUDA that agree
with the CPU's, and a real CUDA out-of-memory error met by halving the batch. Skipped
without CUDA; benchmarks/gpu_check.sh runs them on a GPU machine."""

import copy

import pytest
import torch

from dds.batching import in_batches
from dds.evaluation.inference import resolve
from dds.smoothing.sampling import sample_counts
from test_inference import FP32, tiny_classifier, tiny_denoiser

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
CUDA = torch.device("cuda")


def test_auto_is_bf16_channels_last_on_cuda_and_outputs_stay_fp32(digits8):
    settings = resolve(None, CUDA)
    assert settings.dtype == (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
    assert settings.channels_last
    out = settings.prepare(tiny_classifier())(digits8.images[:32].to(CUDA))
    assert out.dtype == torch.float32 and out.is_contiguous() and out.device.type == "cuda"


def test_fp32_on_cuda_agrees_with_the_cpu(digits8):
    """The presets' fp32 pin: the same denoised images and predictions on either device (fp32
    turns off TF32, which PyTorch's convolutions use on CUDA by default)."""
    cuda = resolve({"precision": "fp32"}, CUDA)
    x = digits8.images[:64]
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    on_cpu = tiny_denoiser(FP32, 0.5)(x, noise)
    on_gpu = tiny_denoiser(cuda, 0.5)(x.to(CUDA), noise.to(CUDA)).cpu()
    assert not torch.backends.cudnn.allow_tf32
    torch.testing.assert_close(on_gpu, on_cpu, atol=1e-4, rtol=0)
    model = tiny_classifier()
    agree = FP32.prepare(copy.deepcopy(model))(on_cpu).argmax(1) == cuda.prepare(model)(on_gpu.to(CUDA)).argmax(1).cpu()
    assert agree.float().mean() >= 0.98


def test_fused_counts_on_cuda_match_the_cpu(digits8):
    cuda = resolve({"precision": "fp32"}, CUDA)
    image = digits8.images[5]
    want = sample_counts(
        tiny_denoiser(FP32, 0.5), {"a": FP32.prepare(tiny_classifier())}, image, 5, 256, "x", 0, 64, "cpu"
    )
    got = sample_counts(
        tiny_denoiser(cuda, 0.5), {"a": cuda.prepare(tiny_classifier())}, image, 5, 256, "x", 0, 64, CUDA
    )
    # the same majority, and counts that differ only where a draw sits on a decision boundary
    assert got["a"].argmax() == want["a"].argmax() and abs(got["a"] - want["a"]).sum() <= 8


def test_a_real_out_of_memory_error_halves_the_batch(caplog):
    """Each image of the step asks for a third of the GPU: a batch of 4 cannot fit, 2 can."""
    third = torch.cuda.get_device_properties(CUDA).total_memory // 3

    def step(start, stop):
        block = torch.empty((stop - start) * third, dtype=torch.uint8, device=CUDA)
        del block
        return list(range(start, stop))

    with caplog.at_level("WARNING"):
        out = in_batches("cuda test", 8, 8, step)
    assert [i for part in out for i in part] == list(range(8))
    assert "CUDA out of memory at batch size 8" in caplog.text and "retrying at batch size 4" in caplog.text
    torch.cuda.empty_cache()
