"""How the inference stages (denoise, classify, certify, blur, transfer) run their models:
the config's `inference` section, resolved for the job's device, in one place.

- `precision`: `auto` is bf16 autocast on CUDA (fp16 on GPUs without bf16) and fp32 on
  the CPU; `fp32`, `bf16` or `fp16` ask for one (fp16 only on CUDA). Autocast keeps the
  weights in fp32 and runs convolutions and matrix products in the lower precision; the
  outputs are fp32 either way.
- `channels_last`: the NHWC memory layout for convolutions. `auto` turns it on on CUDA
  (tensor-core kernels want it) and on the CPU in fp32, where oneDNN's NHWC convolutions
  were faster for every model benchmarks/throughput.py measures; it stays off with bf16 on
  the CPU, where the UNets ran slower in NHWC (numbers in docs/benchmarks.md, "Throughput").
- `compile`: torch.compile (inductor) with the weights frozen into the graph as constants,
  which inference allows and which lets inductor pre-pack convolution weights on the CPU.
  Off by default: compiling takes seconds to a minute per model and batch shape on a CPU,
  more than a short job gains; it pays in long certification runs.

The models stay on the device, but what the stages get back is always fp32.

Every table names the precision its numbers were computed in (dds.precision).
"""

import contextlib
import logging
import time
from dataclasses import dataclass

import torch
from torch import nn

from dds.config import ConfigError

log = logging.getLogger(__name__)

# the schema's defaults (workflow/schemas/config.schema.yaml, `inference`; a test keeps them equal)
DEFAULTS = {"precision": "auto", "channels_last": "auto", "compile": False}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Inference:
    """Resolved settings for one device: the autocast dtype (float32: no autocast), the
    memory layout, and whether models are compiled."""

    device: torch.device
    dtype: torch.dtype = torch.float32
    channels_last: bool = False
    compile: bool = False

    def prepare(self, model: nn.Module) -> "Prepared":
        return Prepared(model, self)

    @property
    def precision(self) -> str:
        """The precision's name: fp32, bf16 or fp16."""
        return next(name for name, dtype in DTYPES.items() if dtype == self.dtype)

    def describe(self) -> str:
        return (
            f"{self.precision}{' autocast' if self.dtype != torch.float32 else ''}, "
            f"{'channels_last' if self.channels_last else 'contiguous'}, "
            f"{'compiled' if self.compile else 'eager'} on {self.device}"
        )

    def autocast(self):
        if self.dtype == torch.float32:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def layout(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last and x.ndim == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x


def resolve(spec: dict | None, device) -> Inference:
    """The `inference` config section (None: the defaults) for `device`."""
    spec = {**DEFAULTS, **(spec or {})}
    device = torch.device(device)
    cuda = device.type == "cuda"
    precision = spec["precision"]
    if precision == "auto":
        precision = "fp32" if not cuda else "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if precision not in DTYPES:
        raise ConfigError(f"config key 'inference.precision': {precision!r}; allowed: auto, {', '.join(DTYPES)}")
    if precision == "fp16" and not cuda:
        raise ConfigError(
            f"config key 'inference.precision': fp16 autocast needs a CUDA device, and this job runs "
            f"on {device}; use auto (fp32 on the CPU) or bf16"
        )
    if precision == "bf16" and cuda and not torch.cuda.is_bf16_supported():
        raise ConfigError(
            f"config key 'inference.precision': {torch.cuda.get_device_name(device)} has no bf16; use auto or fp16"
        )
    channels_last = spec["channels_last"]
    if channels_last == "auto":
        channels_last = cuda or precision == "fp32"
    if not isinstance(channels_last, bool):
        raise ConfigError(f"config key 'inference.channels_last': {channels_last!r}; allowed: auto, true, false")
    settings = Inference(device, DTYPES[precision], channels_last, bool(spec["compile"]))
    if cuda and precision == "fp32":
        # PyTorch runs fp32 convolutions in TF32 on CUDA by default (10-bit mantissa): fp32
        # means fp32 here, as in a reproduction of published fp32 numbers
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    log.info("inference: %s", settings.describe())
    return settings


class Prepared(nn.Module):
    """`model` in eval mode on the settings' device, called in inference mode with its
    inputs in the settings' layout, under autocast, optionally compiled; returns fp32
    tensors in the standard (contiguous) layout. For inference only: no gradients. The
    model itself is changed in place (device, eval mode, layout, compilation)."""

    def __init__(self, model: nn.Module, settings: Inference):
        super().__init__()
        self.model = model.to(settings.device)
        self.eval()
        if settings.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.settings = settings
        self.compile_seconds = None
        if settings.compile:
            # a fixed batch shape per compilation gives the best kernels: each batch size a
            # stage uses (full, selection, last partial batch) compiles once per model, and
            # the models of one class share the function dynamo counts recompilations of
            torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
            self.model.compile(dynamic=False)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        start = time.perf_counter()
        with torch.inference_mode(), self.settings.autocast(), self._freezing():
            out = self.model(*(self.settings.layout(x) for x in inputs))
        if self.settings.compile and self.compile_seconds is None:
            self.compile_seconds = time.perf_counter() - start
            log.info(
                "%s: first call, compilation included, took %.1f s", type(self.model).__name__, self.compile_seconds
            )
        return out.float().contiguous()

    def _freezing(self):
        """Inductor's freezing (weights as constants) for compiled models: it is read while
        dynamo traces, which happens inside the call, so a patch around the call suffices and
        leaves the process's global settings alone (the adaptive attack needs gradients)."""
        if not self.settings.compile:
            return contextlib.nullcontext()
        import torch._inductor.config

        return torch._inductor.config.patch(freezing=True)


def load_prepared(path, device: torch.device, run: Inference) -> nn.Module:
    """A classifier file loaded and prepared for inference by `run` (an inference setting)."""
    from dds.models.classifiers import load_classifier

    return run.prepare(load_classifier(path, device))
