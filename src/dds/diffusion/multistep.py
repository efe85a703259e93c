"""Multi-step purification (docs/science.md §1.7): K reverse steps from t*, with DDIM (Song et al.
2021) or the DDPM ancestral sampler over the respaced timesteps (Nichol & Dhariwal 2021), fixed or
learned variance. The start x_{t*} and every x0 estimate are the one-shot denoiser's, so K = 1
is that denoiser exactly. The reverse noise comes with the input noise, drawn per image by the
caller, so it is seeded per image like the rest.
"""

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from dds.diffusion.one_shot import OneShotDenoiser
from dds.diffusion.openai_unet import OpenAIEps

SAMPLERS = ("ddim", "ddpm")


def reverse_timesteps(t_star: int, steps: int) -> list[int]:
    """K evenly spaced, strictly decreasing timesteps from t*: tau_i = (t* (K - i)) // K."""
    if not 1 <= steps <= max(1, t_star):
        raise ValueError(
            f"steps={steps}: the reverse chain from t*={t_star} takes 1 to {max(1, t_star)} steps; "
            "use fewer steps or a larger sigma"
        )
    return [(t_star * (steps - i)) // steps for i in range(steps)]


def check_settings(sampler: str, steps: int, eta: float) -> None:
    """ValueError naming the setting (sampler, steps or eta) that no chain can run with."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler {sampler!r} is unknown; allowed: {', '.join(SAMPLERS)}")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps={steps!r}: the number of reverse steps is an integer from 1")
    if not 0 <= eta <= 1:
        raise ValueError(f"eta={eta}: DDIM's eta goes from 0 (deterministic) to 1 (DDPM's posterior noise)")
    if sampler == "ddpm" and eta:
        raise ValueError(f"eta={eta} is for the ddim sampler; the ddpm sampler's noise is its posterior's")


class MultiStepDenoiser(OneShotDenoiser):
    """x in [0,1] plus the per-image noise of `noise_shape` -> the clean estimate after K reverse
    steps, in [0,1]. Each step but the last is checkpointed when its input carries a gradient, so
    backpropagation through the chain holds one step's activations whatever K."""

    def __init__(self, eps_model, alphas_cumprod, sigma, sampler, steps, eta=0.0, output_size=None):
        super().__init__(eps_model, alphas_cumprod, sigma, output_size)
        check_settings(sampler, steps, eta)
        self.sampler, self.steps, self.eta = sampler, steps, float(eta)
        self.timesteps = reverse_timesteps(self.t, self.steps)
        self.abars = [float(alphas_cumprod[t]) for t in self.timesteps]  # float64, as the one-shot abar
        self.checkpointing = True

    def settings(self) -> dict:
        eta = self.eta if self.sampler == "ddim" else None
        return {"sampler": self.sampler, "reverse_steps": self.steps, "eta": eta, "t_star": self.t}

    def noise_draws(self) -> int:
        """How many reverse steps add noise: all but the last, for ddpm and ddim with eta > 0."""
        return self.steps - 1 if self.sampler == "ddpm" or self.eta > 0 else 0

    def noise_shape(self, shape) -> tuple:
        """Channels [0:C]: the noise n of x_{t*}; [C(i+1):C(i+2)]: the noise z_i of step i."""
        c, *rest = shape
        return (c * (1 + self.noise_draws()), *rest)

    def forward(self, x: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        x_t = self.noisy(x, noise[:, :c])
        for i in range(self.steps):
            z = noise[:, c * (i + 1) : c * (i + 2)] if i < self.noise_draws() else None
            # the last step's activations are needed at once by the backward pass: no checkpoint
            if self.checkpointing and i < self.steps - 1 and torch.is_grad_enabled() and x_t.requires_grad:
                x_t = checkpoint(self.step, x_t, i, z, use_reentrant=False)
            else:
                x_t = self.step(x_t, i, z)
        return self.image(x_t)

    def step(self, x_t: torch.Tensor, i: int, z: torch.Tensor | None) -> torch.Tensor:
        """Reverse step i: x_{tau_{i+1}} from x_{tau_i}, or the clamped x0 estimate at the last."""
        abar = self.abars[i]
        out, x0 = self.estimate(x_t, self.timesteps[i], abar)
        if i == self.steps - 1:
            return x0
        prev = self.abars[i + 1]
        if self.sampler == "ddim":
            eps = (x_t - abar**0.5 * x0) / (1 - abar) ** 0.5  # the epsilon the clamped x0 implies
            s = self.eta * ((1 - prev) / (1 - abar)) ** 0.5 * (1 - abar / prev) ** 0.5
            x_prev = prev**0.5 * x0 + (1 - prev - s**2) ** 0.5 * eps
            return x_prev if z is None else x_prev + s * z
        beta = 1 - abar / prev  # the respaced step's beta
        mean = prev**0.5 * beta / (1 - abar) * x0 + (1 - beta) ** 0.5 * (1 - prev) / (1 - abar) * x_t
        var = beta * (1 - prev) / (1 - abar)  # the posterior's variance
        c = x_t.shape[1]
        if out.shape[1] == 2 * c:  # learned range between log(var) and log(beta)
            frac = (out[:, c:] + 1) / 2
            return mean + torch.exp((frac * math.log(beta) + (1 - frac) * math.log(var)) / 2) * z
        return mean + var**0.5 * z


class AllChannels(OpenAIEps):
    """An OpenAI network's whole output, epsilon and learned variance: OpenAIEps keeps only epsilon."""

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x_t, self.model_timesteps(t))


def with_variance(eps_model: nn.Module) -> nn.Module:
    """The network with its learned-variance channels where it has them (the official checkpoints)."""
    if type(eps_model) is OpenAIEps and eps_model.unet.config.learn_sigma:
        return AllChannels(eps_model.unet, eps_model.num_timesteps, eps_model.rescale_timesteps)
    return eps_model
