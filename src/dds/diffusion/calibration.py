"""Diffusion calibration (Jeong & Shin, Multi-scale Diffusion Denoised Smoothing, NeurIPS 2023,
arXiv 2310.16779): fine-tune the one-shot denoiser D for a frozen classifier f, so that the
cascade of sigmas is consistent where it is right and abstains where it is wrong.

The paper's exact text is not available offline; this is the reading used. Each optimizer step:
draw `batch_size` training images x with labels y (with replacement), one sigma per image
uniformly from `sigmas` (the cascade's), and m = `draws` standard normal noises n_i per image;
p_i = softmax(f(D_sigma(x + sigma n_i))), with the gradient through D only (f is in eval mode and
requires no gradient: its parameters and BatchNorm statistics never change). An image is right
when the majority vote of the m predictions (decided without gradient) is y. Then

  loss = brier_weight     * mean over right images of (1/m) sum_i ||p_i - onehot(y)||^2
       + anti_weight      * mean over wrong images of ||pbar||^2,  pbar = (1/m) sum_i p_i
       + denoising_weight * the DDPM epsilon MSE at uniform timesteps on the same clean images,

a term over an empty group being 0 (dds.diffusion.calibration_loss). The Brier term makes the
right images' predictions consistent; ||pbar||^2, minimal (1/C) at the uniform prediction,
spreads the wrong images' average over the classes, so the cascade abstains there rather than
certifying a wrong class; the MSE keeps D a denoiser.

AdamW without weight decay (the prior is the pretrained weights, not zero), with the warm-up and
cosine decay of dds.models.schedule: the warm-up keeps Adam's first, full-size steps off the
pretrained weights, and the decay ends the run on small steps rather than on the last batch's
noise. The network runs in train mode (its own dropout, if any) in full precision. Every draw
comes from one CPU generator seeded from `seed`, and a checkpoint every `checkpoint_every` steps
(dds.models.training) lets an interrupted run continue to exactly the weights of an
uninterrupted one."""

import dataclasses
import logging
import time

import torch
import torch.nn.functional as F
from torch import nn

from dds.diffusion.calibration_loss import calibration_loss, denoising_mse
from dds.diffusion.one_shot import OneShotDenoiser
from dds.io import ImageSet
from dds.models import training
from dds.models.schedule import warmup_cosine
from dds.seeding import derive_seed

log = logging.getLogger(__name__)

LOG_EVERY = 10


@dataclasses.dataclass(frozen=True)
class Settings:
    """A calibrated denoiser's training settings (the config keys of the same names)."""

    steps: int
    batch_size: int
    draws: int
    lr: float
    brier_weight: float
    anti_weight: float
    denoising_weight: float
    checkpoint_every: int

    @classmethod
    def from_spec(cls, spec: dict) -> "Settings":
        return cls(**{f.name: spec[f.name] for f in dataclasses.fields(cls)})


def _draw(train: ImageSet, num_sigmas: int, num_timesteps: int, settings: Settings, generator: torch.Generator):
    """One step's random draws, all from the CPU generator (so that they do not depend on the
    device): image positions, sigma indices, the m noises per image, and the DDPM term's
    timesteps and noise."""
    n, shape = settings.batch_size, train.images.shape[1:]
    pos = torch.randint(len(train), (n,), generator=generator)
    which = torch.randint(num_sigmas, (n,), generator=generator)
    noise = torch.randn((n, settings.draws, *shape), generator=generator)
    t = torch.randint(num_timesteps, (n,), generator=generator)
    eps = torch.randn((n, *shape), generator=generator)
    return pos, which, noise, t, eps


def _probabilities(denoisers, classifier, x, y, which, noise) -> tuple[torch.Tensor, torch.Tensor]:
    """(p [N, m, C], labels [N]) with the images grouped by their sigma: every image denoised
    from each of its m noises at its sigma, then classified in one pass."""
    m = noise.shape[1]
    groups = [s for s in range(len(denoisers)) if (which == s).any()]
    denoised = torch.cat(
        [denoisers[s](x[which == s].repeat_interleave(m, 0), noise[which == s].flatten(0, 1)) for s in groups]
    )
    labels = torch.cat([y[which == s] for s in groups])
    return F.softmax(classifier(denoised), -1).view(len(labels), m, -1), labels


def calibrate(
    eps_model: nn.Module,
    alphas_cumprod: torch.Tensor,
    classifier: nn.Module,
    train: ImageSet,
    settings: Settings,
    sigmas: list,
    seed: int,
    device,
    checkpoint_dir=None,
    identity: dict | None = None,
) -> dict:
    """Calibrate `eps_model` in place for the frozen `classifier` (the module docstring). The
    record: the terms and the fraction right averaged over every LOG_EVERY steps (`history`; the
    last in `final` and `fraction_right`, None without steps), settings, sigmas, seconds,
    parameters, and the step a resumed run started from. `checkpoint_dir`: a checkpoint every
    settings.checkpoint_every steps, from which a rerun continues when the run is the same
    (settings, sigmas, seed and `identity`, a JSON-able description of the inputs); the caller
    discards it once the weights are saved. steps=0 leaves the weights exactly as they are."""
    device = torch.device(device)
    sigmas = [float(s) for s in sigmas]
    classifier.to(device).eval().requires_grad_(False)
    eps_model.to(device)
    denoisers = [OneShotDenoiser(eps_model, alphas_cumprod, s) for s in sigmas]
    torch.manual_seed(derive_seed(seed, "calibrate-denoiser"))  # the network's dropout, if any
    generator = torch.Generator().manual_seed(derive_seed(seed, "calibrate-denoiser-draws"))
    optimizer = training.adamw(eps_model.parameters(), lr=settings.lr, weight_decay=0.0)
    schedule = warmup_cosine(optimizer, max(1, settings.steps))
    # how often checkpoints are written does not change the result: not part of the run's identity
    run = {**dataclasses.asdict(settings), "sigmas": sigmas, "seed": seed, **(identity or {})}
    run.pop("checkpoint_every")
    done = (
        0
        if checkpoint_dir is None
        else training.load_checkpoint(checkpoint_dir, run, eps_model, optimizer, schedule, None, {"draws": generator})
    )
    start, window, history = time.perf_counter(), [], []
    eps_model.train()
    for step in range(done + 1, settings.steps + 1):
        pos, which, noise, t, eps = _draw(train, len(sigmas), len(alphas_cumprod), settings, generator)
        x, y = train.images[pos].to(device), train.labels[pos].to(device)
        which, noise, t, eps = which.to(device), noise.to(device), t.to(device), eps.to(device)
        p, labels = _probabilities(denoisers, classifier, x, y, which, noise)
        mse = denoising_mse(eps_model, x, t, eps, alphas_cumprod)
        loss, terms = calibration_loss(
            p, labels, mse, settings.brier_weight, settings.anti_weight, settings.denoising_weight
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        window.append(terms)
        if step % LOG_EVERY == 0 or step == settings.steps:
            history.append({"step": step, **{k: sum(w[k] for w in window) / len(window) for k in terms}})
            window = []
            log.info(
                "step %d/%d: loss %.4f (brier %.4f, anti %.4f, denoising %.4f), right %.3f (%.1f s)",
                step,
                settings.steps,
                *(history[-1][k] for k in ("loss", "brier", "anti", "denoising", "right")),
                time.perf_counter() - start,
            )
        if checkpoint_dir is not None and step % settings.checkpoint_every == 0 and step < settings.steps:
            training.save_checkpoint(
                checkpoint_dir, step, run, eps_model, optimizer, schedule, None, {"draws": generator}
            )
    eps_model.eval()
    return {
        "steps": settings.steps,
        "resumed_from": done,
        "final": history[-1] if history else None,
        "fraction_right": history[-1]["right"] if history else None,
        "history": history,
        "settings": dataclasses.asdict(settings),
        "sigmas": sigmas,
        "seconds": round(time.perf_counter() - start, 2),
        "parameters": sum(p.numel() for p in eps_model.parameters()),
    }
