"""A small DDPM trained with diffusers (UNet2DModel + DDPMScheduler), stored as safetensors
with its noise schedule, and wrapped as the epsilon network of the one-shot denoiser."""

import json
import logging
import time

import torch
from diffusers import DDPMScheduler, UNet2DModel
from torch import nn

from dds.io import DataFileError, ImageSet, load_tensors, save_tensors
from dds.models import training
from dds.models.schedule import warmup_cosine
from dds.seeding import derive_seed

log = logging.getLogger(__name__)


class DiffusersEps(nn.Module):
    """eps_model(x_t, t) for a diffusers UNet2DModel."""

    def __init__(self, unet: UNet2DModel):
        super().__init__()
        self.unet = unet

    def forward(self, x_t, t):
        return self.unet(x_t, t).sample


def build_unet(image_size: int, channels: int, spec: dict) -> UNet2DModel:
    levels = len(spec["block_out_channels"])
    attention = set(spec["attention_levels"])
    if not attention <= set(range(levels)):
        raise ValueError(f"attention_levels {sorted(attention)} must index the {levels} UNet levels (0..{levels - 1})")
    down = [("AttnDownBlock2D" if i in attention else "DownBlock2D") for i in range(levels)]
    up = [("AttnUpBlock2D" if i in attention else "UpBlock2D") for i in reversed(range(levels))]
    return UNet2DModel(
        sample_size=image_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=tuple(spec["block_out_channels"]),
        layers_per_block=spec["layers_per_block"],
        down_block_types=tuple(down),
        up_block_types=tuple(up),
        norm_num_groups=min(8, *spec["block_out_channels"]),
    )


def build_scheduler(spec: dict) -> DDPMScheduler:
    return DDPMScheduler(num_train_timesteps=spec["num_train_timesteps"], beta_schedule=spec["beta_schedule"])


def train_ddpm(
    unet: UNet2DModel,
    scheduler: DDPMScheduler,
    train: ImageSet,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    device,
    max_timestep: int | None = None,
) -> dict:
    """The DDPM objective: predict the noise added at a uniformly drawn timestep (MSE), up to
    `max_timestep` when given (a denoiser used at small noise levels only needs those)."""
    torch.manual_seed(derive_seed(seed, "train-denoiser"))
    rng = torch.Generator().manual_seed(derive_seed(seed, "train-denoiser-draws"))
    unet.to(device).train()
    optimizer = training.adamw(unet.parameters(), lr=lr)
    schedule = warmup_cosine(optimizer, steps)
    x_all = train.images * 2 - 1
    T = scheduler.config.num_train_timesteps if max_timestep is None else max_timestep + 1
    start, running = time.perf_counter(), None
    for step in range(1, steps + 1):
        pos = torch.randint(len(x_all), (batch_size,), generator=rng)
        t = torch.randint(T, (batch_size,), generator=rng)
        noise = torch.randn((batch_size, *x_all.shape[1:]), generator=rng)
        x0, t, noise = x_all[pos].to(device), t.to(device), noise.to(device)
        x_t = scheduler.add_noise(x0, noise, t)
        loss = nn.functional.mse_loss(unet(x_t, t).sample, noise)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
        if step % 100 == 0 or step == steps:
            log.info("step %d/%d: loss %.4f (%.1f s)", step, steps, running, time.perf_counter() - start)
    unet.eval()
    return {
        "steps": steps,
        "timesteps": T,
        "final_loss": running,
        "seconds": round(time.perf_counter() - start, 2),
        "parameters": sum(p.numel() for p in unet.parameters()),
    }


def save_ddpm(unet: UNet2DModel, scheduler: DDPMScheduler, path) -> None:
    tensors = {f"unet.{k}": v for k, v in unet.state_dict().items()}
    tensors["alphas_cumprod"] = scheduler.alphas_cumprod.to(torch.float64)
    metadata = {
        "unet_config": json.dumps(dict(unet.config), sort_keys=True, default=list),
        "scheduler_config": json.dumps(dict(scheduler.config), sort_keys=True, default=list),
    }
    save_tensors(tensors, path, metadata)


def load_ddpm(path, device="cpu") -> tuple[DiffusersEps, torch.Tensor]:
    """(epsilon network, alphas_cumprod) from a file written by save_ddpm, loaded strictly."""
    tensors, meta = load_tensors(path)
    if "unet_config" not in meta or "alphas_cumprod" not in tensors:
        raise DataFileError(f"{path}: not a dds DDPM file (no unet_config metadata or alphas_cumprod tensor)")
    config = {k: v for k, v in json.loads(meta["unet_config"]).items() if not k.startswith("_")}
    unet = UNet2DModel(**config)
    state = {k[len("unet.") :]: v for k, v in tensors.items() if k.startswith("unet.")}
    try:
        unet.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise DataFileError(f"{path}: weights do not fit the stored UNet config: {err}") from None
    return DiffusersEps(unet).to(device).eval(), tensors["alphas_cumprod"]
