"""What one training step of the demo's models costs on one CPU thread, and how much of it is
AdamW's update in each of torch's implementations: the per-tensor loop (torch's default on
the CPU), `foreach` and `fused` (what dds.models.training.adamw uses).

    python benchmarks/optimizer_step.py --steps 20

Models as the demo's config.yaml builds them: the ResNet-18 and the ViT at 16x16 (one channel,
10 classes, batch 64) and the DDPM's UNet (batch 64).
"""

import argparse
import time
from pathlib import Path

import timm
import torch
import yaml

from dds.config import validate
from dds.diffusion.ddpm import build_unet

REPO = Path(__file__).resolve().parents[1]
IMPLEMENTATIONS = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}


def models(config: dict) -> dict:
    size = config["dataset"]["image_size"]
    built = {}
    for name in ("resnet", "vit"):
        spec = config["classifiers"][name]
        built[name] = timm.create_model(spec["model"], num_classes=10, in_chans=1, **spec["kwargs"])
    unet = build_unet(size, 1, config["denoisers"]["ddpm"])
    built["ddpm"] = unet
    return built


def loss_of(name: str, model, generator: torch.Generator, size: int) -> torch.Tensor:
    x = torch.randn(64, 1, size, size, generator=generator)
    if name == "ddpm":
        t = torch.randint(0, 400, (64,), generator=generator)
        return torch.nn.functional.mse_loss(model(x, t).sample, torch.randn(x.shape, generator=generator))
    y = torch.randint(0, 10, (64,), generator=generator)
    return torch.nn.functional.cross_entropy(model(x), y)


def measure(name: str, model, options: dict, steps: int, size: int) -> tuple[float, float]:
    """(seconds per whole step, seconds per optimizer update), after two warm-up steps."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **options)
    generator = torch.Generator().manual_seed(0)
    whole = update = 0.0
    for step in range(steps + 2):
        start = time.perf_counter()
        loss = loss_of(name, model, generator, size)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        middle = time.perf_counter()
        optimizer.step()
        end = time.perf_counter()
        if step >= 2:
            whole, update = whole + end - start, update + end - middle
    return whole / steps, update / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = validate(yaml.safe_load((REPO / "config.yaml").read_text()), REPO / "workflow/schemas/config.schema.yaml")
    size = config["dataset"]["image_size"]
    print("| model | parameters | AdamW | ms per step | ms in the update |")
    print("|---|---:|---|---:|---:|")
    for name, model in models(config).items():
        count = sum(p.numel() for p in model.parameters())
        for label, options in IMPLEMENTATIONS.items():
            whole, update = measure(name, model, options, args.steps, size)
            print(f"| {name} | {count / 1e6:.2f}M | {label} | {whole * 1e3:.0f} | {update * 1e3:.1f} |", flush=True)


if __name__ == "__main__":
    main()
