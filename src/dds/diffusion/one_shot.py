"""One-shot diffusion denoising (Carlini et al. 2022; docs/science.md §1.1).

Works with any epsilon-predicting network `eps_model(x_t, t)` and any cumulative schedule
`alphas_cumprod`, in the network's [-1,1] space, where a [0,1]-space noise level sigma is
2*sigma. The noisy input is `x_t = sqrt(abar[t*]) * (x' + 2*sigma*n)`: exactly sigma of
noise, so certificates for sigma stay valid. (The reference code of Carlini et al. uses
`q_sample`, which adds `sqrt(1 - abar[t*]) * n`: slightly more than sigma.)
"""

import torch
import torch.nn.functional as F
from torch import nn

from dds.batching import in_batches
from dds.clamping import clamp
from dds.seeding import image_normal


def sigma_timestep(alphas_cumprod: torch.Tensor, sigma: float) -> int:
    """t* = min { t : sqrt((1 - abar[t]) / abar[t]) >= 2 * sigma }."""
    abar = alphas_cumprod.double()
    ratio = torch.sqrt((1 - abar) / abar)
    hits = torch.nonzero(ratio >= 2 * sigma)
    if len(hits) == 0:
        raise ValueError(
            f"sigma={sigma} is beyond this noise schedule: its largest level is sigma="
            f"{ratio.max().item() / 2:.4g}; use a smaller sigma or a schedule with more noise"
        )
    return int(hits[0, 0])


class OneShotDenoiser(nn.Module):
    """x in [0,1] plus standard normal noise n -> one-shot estimate of the clean image in [0,1],
    resized to `output_size` when given. Differentiable end to end; `straight_through` (set by the
    adaptive attack only) passes the gradient through the clamp to [-1, 1] (dds.clamping)."""

    def __init__(self, eps_model: nn.Module, alphas_cumprod: torch.Tensor, sigma: float, output_size=None):
        super().__init__()
        self.eps_model = eps_model
        self.sigma = float(sigma)
        self.t = sigma_timestep(alphas_cumprod, sigma)
        self.abar = float(alphas_cumprod[self.t])
        self.output_size = output_size
        self.straight_through = False

    def noisy(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x_t in the network's space: sqrt(abar) * (2x - 1 + 2 sigma n)."""
        return self.abar**0.5 * (2 * x - 1 + 2 * self.sigma * noise)

    def noise_shape(self, shape) -> tuple:
        """The per-image shape of the standard normal noise `forward` takes, for images of shape (C, H, W)."""
        return tuple(shape)

    def settings(self) -> dict:
        """The sampler's settings, as table columns."""
        return {"sampler": "one-shot", "reverse_steps": 1, "eta": None, "t_star": self.t}

    def estimate(self, x_t: torch.Tensor, t: int, abar: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(network output, clamped x0 estimate) at timestep t of abar[t] = `abar`."""
        out = self.eps_model(x_t, torch.full((len(x_t),), t, device=x_t.device, dtype=torch.long))
        # networks with learned variance output 2C channels; the first C are epsilon
        eps = out[:, : x_t.shape[1]]
        x0 = (x_t - (1 - abar) ** 0.5 * eps) / abar**0.5
        return out, clamp(x0, -1, 1, self.straight_through)

    def image(self, x0: torch.Tensor) -> torch.Tensor:
        """A clean estimate in [-1,1] as an image in [0,1], resized to `output_size`."""
        out = (x0 + 1) / 2
        if self.output_size is not None and tuple(out.shape[-2:]) != tuple(self.output_size):
            out = F.interpolate(out, size=self.output_size, mode="bilinear", align_corners=False)
        return out

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return self.image(self.estimate(self.noisy(x, noise), self.t, self.abar)[1])


def image_noise(idx: torch.Tensor, shape, seed: int, sigma: float) -> torch.Tensor:
    """Standard normal noise, one draw per image, seeded by (seed, sigma, image index): the draw
    of an image never depends on batch size, sharding, or which set (clean or adversarial) it
    belongs to, so clean and attacked versions of an image see the same noise."""
    return image_normal(idx, shape, seed, "denoise", float(sigma))


@torch.inference_mode()
def denoise_images(denoiser: OneShotDenoiser, data, seed: int, batch_size: int, device) -> torch.Tensor:
    """Each image of an ImageSet denoised from its own seeded noise draw (`image_noise`), on CPU."""

    def step(start, stop):
        part = data.subset(start, stop)
        noise = image_noise(part.idx, denoiser.noise_shape(part.images.shape[1:]), seed, denoiser.sigma)
        return denoiser(part.images.to(device), noise.to(device)).cpu()

    out = in_batches("denoise", len(data), batch_size, step)
    return torch.cat(out) if out else data.images.clone()
