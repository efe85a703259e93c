"""The attack that knows the defence (docs/science.md §1.6): PGD whose gradient flows through the
added noise, the one-shot denoiser and the classifier, with expectation over noise draws
(EOT), against one of two targets:

- `single`: the single-draw defended classifier f(D(x + sigma n)), the Safeguarding
  Attention paper's metric: minimise E_n[log p_y], i.e. maximise the expected cross-entropy;
- `smoothed`: the soft smoothed classifier, maximise -log E_n[p_y(x + sigma n)].

Draws are processed `draws_per_pass` at a time and their gradients accumulated, so a large
EOT count fits in memory; the result equals one pass over all draws (tested). The noise of
draw k at PGD step s for image idx is seeded by (seed, sigma, s, k, idx): the attack never
sees the draws the evaluation uses, and no draw depends on the batch or the shard. (The
fixed-noise diagnostic instead gives its own `noise`: the evaluation's draw at every step.)

With `straight_through` the gradient passes through the clamps inside the defence (the
denoiser's to [-1, 1], at every reverse step of a multi-step one; the classifier's after a
bicubic resize; dds.clamping), which a plain clamp masks on saturated pixels; the forward pass
is the same. PGD's own projection to [0,1] stays a projection. With `bpda` the denoiser's
backward pass is the identity (BPDA, Athalye et al. 2018): a weaker attack, for comparison with
the exact gradient (docs/science.md §1.7).

The PGD loop follows torchattacks' PGD and PGDL2 step for step (tested against them on the
undefended model), because those take a model, not a gradient of an expectation.
"""

import logging
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from dds.attacks.registry import ITERATIVE, METHODS, step_size
from dds.batching import in_batches
from dds.seeding import generator, image_normal

log = logging.getLogger(__name__)

TARGETS = ("single", "smoothed")


def eot_gradient(
    logits_fn, x: torch.Tensor, labels: torch.Tensor, noise_fn, draws: int, draws_per_pass: int, target: str
) -> torch.Tensor:
    """Gradient with respect to `x` of the attack's loss (to ascend), summed over images.

    `logits_fn(x, noise)`: logits of the defended classifier on `x` with standard normal
    `noise` of the same shape; `noise_fn(k)`: the noise of draw k, shaped like `x`.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown adaptive attack target {target!r}; allowed: {', '.join(TARGETS)}")
    x = x.detach()
    chunks = [range(k, min(draws, k + draws_per_pass)) for k in range(0, draws, draws_per_pass)]

    def probabilities(xs, ks):
        noise = torch.cat([noise_fn(k) for k in ks]).to(x.device)
        z = logits_fn(xs.repeat(len(ks), 1, 1, 1), noise).view(len(ks), len(x), -1)
        return z, F.softmax(z.float(), dim=-1).gather(2, labels.view(1, -1, 1).expand(len(ks), -1, 1))[..., 0]

    if target == "smoothed" and len(chunks) > 1:
        # -log mean_k p_k is not a sum over draws: first the mean (no graph), then
        # d(-log pbar) = -(1 / pbar) * mean_k dp_k, accumulated pass by pass
        with torch.no_grad():
            pbar = sum(probabilities(x, ks)[1].sum(0) for ks in chunks) / draws
    grad = torch.zeros_like(x)
    for ks in chunks:
        xs = x.clone().requires_grad_(True)
        z, p = probabilities(xs, ks)
        if target == "single":
            loss = F.cross_entropy(z.flatten(0, 1).float(), labels.repeat(len(ks)), reduction="sum") / draws
        elif len(chunks) == 1:
            loss = -torch.log(p.mean(0).clamp_min(1e-30)).sum()
        else:
            loss = -(p / (draws * pbar.clamp_min(1e-30))).sum()
        grad += torch.autograd.grad(loss, xs)[0]
    return grad


def random_start(idx: torch.Tensor, shape, epsilon: float, norm: str, seed: int) -> torch.Tensor:
    """A random point of each image's epsilon ball (uniform per pixel for L-inf; a uniform
    radius along a Gaussian direction for L2, as torchattacks does), seeded per image."""
    out = []
    for i in idx:
        gen = generator(seed, "adaptive-start", int(i))
        if norm == "linf":
            out.append((torch.rand(tuple(shape), generator=gen) * 2 - 1) * epsilon)
        else:
            direction = torch.randn(tuple(shape), generator=gen)
            out.append(direction * (torch.rand((), generator=gen) * epsilon / direction.norm()))
    return torch.stack(out) if out else torch.empty((0, *shape))


def pgd(
    grad_fn,
    images: torch.Tensor,
    epsilon: float,
    alpha: float,
    steps: int,
    norm: str,
    start: torch.Tensor | None = None,
) -> torch.Tensor:
    """Projected gradient ascent in the L-inf or L2 ball of radius `epsilon` around `images`,
    kept in [0,1], from `images + start` (no random start: None); `grad_fn(x, step)` gives
    the gradient of the loss at step `step`."""
    if norm not in ("linf", "l2"):
        raise ValueError(f"PGD norm must be 'linf' or 'l2', got {norm!r}")
    x = images.detach()
    view = (-1,) + (1,) * (x.ndim - 1)
    adv = x.clone() if start is None else (x + start.to(x)).clamp(0, 1)
    for step in range(steps):
        grad = grad_fn(adv, step)
        if norm == "linf":
            adv = adv + alpha * grad.sign()
            adv = (x + (adv - x).clamp(-epsilon, epsilon)).clamp(0, 1)
        else:
            grad = grad / (grad.flatten(1).norm(dim=1) + 1e-10).view(view)
            delta = adv + alpha * grad - x
            factor = (epsilon / delta.flatten(1).norm(dim=1)).clamp(max=1.0)
            adv = (x + delta * factor.view(view)).clamp(0, 1)
        adv = adv.detach()
    return adv


class _IdentityBackward(torch.autograd.Function):
    """BPDA: the value of `approximation`, the gradient of `x` (the identity's)."""

    @staticmethod
    def forward(ctx, x, approximation):
        return approximation.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad, None


class Defended(nn.Module):
    """classifier(denoiser(x, noise)): the defended pipeline, differentiable in x."""

    def __init__(self, denoiser: nn.Module, classifier: nn.Module):
        super().__init__()
        self.denoiser = denoiser
        self.classifier = classifier
        self.bpda = False

    def forward(self, x, noise):
        denoised = self.denoiser(x, noise)
        if self.bpda:  # the identity's gradient, resized like the denoiser's output
            same = x if x.shape == denoised.shape else F.interpolate(x, size=denoised.shape[-2:], mode="bilinear")
            denoised = _IdentityBackward.apply(same, denoised.detach())
        return self.classifier(denoised)

    @contextmanager
    def gradient(self, straight_through: bool, bpda: bool = False):
        """Within the block, the denoiser's and the classifier's clamps pass the gradient
        (`straight_through`) or mask it, and the denoiser's backward pass is the identity (`bpda`)."""
        before = self.denoiser.straight_through, self.classifier.straight_through, self.bpda
        self.denoiser.straight_through = self.classifier.straight_through = straight_through
        self.bpda = bpda
        try:
            yield self
        finally:
            self.denoiser.straight_through, self.classifier.straight_through, self.bpda = before


def adaptive_attack(
    defended: Defended,
    spec: dict,
    epsilon: float,
    idx: torch.Tensor,
    images: torch.Tensor,
    labels: torch.Tensor,
    target: str,
    draws: int,
    draws_per_pass: int,
    seed: int,
    batch_size: int,
    device,
    *,
    straight_through: bool = True,
    bpda: bool = False,
    noise=None,
) -> torch.Tensor:
    """Adversarial images against the defended pipeline, with the method, steps, step size
    and random start of the PGD attack `spec` (an iterative method) at radius `epsilon`.
    `noise(idx, shape, step, k)`: the standard normal noise of EOT draw k at PGD step `step`
    for the images `idx` (`shape`: the denoiser's noise_shape, which holds a multi-step chain's
    noise too); by default fresh draws seeded by (seed, sigma, step, k, image)."""
    if spec["method"] not in ITERATIVE:
        raise ValueError(f"the adaptive attack runs PGD ({', '.join(ITERATIVE)}), not {spec['method']!r}")
    defended.eval()
    if epsilon == 0:
        return images.clone()
    sigma = defended.denoiser.sigma
    norm = METHODS[spec["method"]].norm
    if noise is None:

        def noise(part_idx, shape, step, k):
            return image_normal(part_idx, shape, seed, "adaptive-eot", float(sigma), step, k)

    def attack_batch(start, stop):
        part_idx, x, y = idx[start:stop], images[start:stop].to(device), labels[start:stop].to(device)

        def grad_fn(adv, step):
            def noise_fn(k):
                return noise(part_idx, defended.denoiser.noise_shape(adv.shape[1:]), step, k)

            return eot_gradient(defended, adv, y, noise_fn, draws, draws_per_pass, target)

        init = random_start(part_idx, x.shape[1:], epsilon, norm, seed) if spec.get("random_start") else None
        adv = pgd(grad_fn, x, epsilon, step_size(spec, epsilon), spec["steps"], norm, init).cpu()
        log.info("adaptive %s attack eps=%g sigma=%g: %d/%d images", target, epsilon, sigma, stop, len(images))
        return adv

    with defended.gradient(straight_through, bpda):
        return torch.cat(in_batches("adaptive attack", len(images), batch_size, attack_batch))
