"""GPU memory of the presets' networks per image, and the batch sizes that fit a GPU, measured
without allocating that memory: the networks (benchmarks/preset_cost.py builds them at paper
size) live on PyTorch's meta device, where tensors have shapes but no data, and run under a
dispatch mode that adds up the bytes of the tensors each operation creates while they are
alive, keeping the peak. That peak is what the CUDA caching allocator must hold at least.

    python benchmarks/activation_memory.py                       # both presets, about 10 s
    python benchmarks/activation_memory.py --gpu-gb 80 --usable 0.7

Per network: its weights (MB), and per image (MB) the peak of one forward in inference mode
(denoise, classify, blur, certify) and of a forward and a backward to the input with the
weights requiring gradients (the attack: torchattacks' PGD), from the peaks at two batch
sizes: (peak(b2) - peak(b1)) / (b2 - b1). Per stage of the preset: the networks a job holds
(weights) and runs one after another (the largest per-image peak), and the largest power-of-two
batch whose weights, fixed part and activations fit `--usable` of the GPU. The rest is the
margin for what the count does not see: the CUDA context, cuDNN workspaces, the caching
allocator's rounding and fragmentation, and the images and outputs a job keeps.
"""

import argparse
import weakref

import torch
import yaml
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from dds.config import validate
from preset_cost import REPO, networks

MB = 1e6


class LiveBytes(TorchDispatchMode):
    """Bytes of the storages the operations under it create, while they are alive, and their
    peak; the storages of the tensors in `existing` (weights) are not counted, even when an
    operation returns a view of them."""

    def __init__(self, existing=()):
        super().__init__()
        self.live = self.peak = 0
        self.existing = {id(t.untyped_storage()) for t in existing}
        self.counted = set()  # id() of the counted storages that are alive

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if isinstance(tensor, torch.Tensor):
                self.count(tensor.untyped_storage())
        return out

    def count(self, storage):
        key = id(storage)
        if key in self.counted or key in self.existing or storage.nbytes() == 0:
            return
        self.counted.add(key)
        self.live += storage.nbytes()
        self.peak = max(self.peak, self.live)
        weakref.finalize(storage, self.release, key, storage.nbytes())

    def release(self, key, nbytes):
        self.counted.discard(key)
        self.live -= nbytes


def peak_bytes(model, shape, timestep: bool, batch: int, backward: bool) -> int:
    """The peak of live tensor bytes of one forward (in inference mode), or one forward and
    backward to the input, on a batch of `batch` images of `shape`, on the model's device."""
    device = next(model.parameters()).device
    with LiveBytes([*model.parameters(), *model.buffers()]) as mode:
        x = torch.rand(batch, *shape, device=device, requires_grad=backward)
        args = (x * 2 - 1, torch.full((batch,), 100.0, device=device)) if timestep else (x,)
        if backward:
            out = model(*args)
            loss = torch.nn.functional.cross_entropy(out, torch.zeros(batch, dtype=torch.long, device=device))
            torch.autograd.grad(loss, x)
        else:
            with torch.inference_mode():
                model(*args)
        del x, args
    return mode.peak


def measure(model, shape, timestep: bool, batches=(2, 4)) -> dict:
    """MB: weights, and per image and fixed (at batch 0) for forward and forward+backward."""
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    out = {"weights": weights / MB}
    for mode, backward in (("forward", False), ("backward", True)):
        if backward and timestep:
            continue  # no stage of the presets differentiates through the UNet
        low, high = (peak_bytes(model, shape, timestep, b, backward) for b in batches)
        per_image = (high - low) / (batches[1] - batches[0])
        out[mode] = per_image / MB
        out[f"{mode}_fixed"] = max(0.0, low - batches[0] * per_image) / MB
    return out


def fit(sizes: dict, job: list, mode: str, budget_mb: float, cap: int = 1 << 16) -> tuple:
    """(weights MB, MB per image, the largest power-of-two batch up to `cap`, or 0) of a job
    holding the networks of `job` and running them one after another ("forward" or "backward"):
    weights + fixed part + batch * MB per image must stay within `budget_mb`."""
    weights = sum(sizes[n]["weights"] for n in job)
    per_image = max(sizes[n][mode] for n in job)
    room = budget_mb - weights - max(sizes[n][f"{mode}_fixed"] for n in job)
    batch = 1
    while batch * 2 <= cap and batch * 2 * per_image <= room:
        batch *= 2
    return weights, per_image, batch if per_image <= room else 0


def stages(config: dict) -> dict:
    """rule -> (forward or backward, its jobs: [the networks each holds and runs one after another])."""
    classifiers, (unet,) = list(config["classifiers"]), list(config["denoisers"])
    out = {
        "attack": ("backward", [[c] for c in classifiers]),
        "denoise_and_classify": ("forward", [[unet, c] for c in classifiers]),
        "classify_undefended, blur_*": ("forward", [[c] for c in classifiers]),
        "certify_* (draws per pass)": ("forward", [[unet, *classifiers]]),
    }
    if config["transfer"]["enabled"]:
        out["transfer_matrix"] = ("forward", [classifiers])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["cifar10-paper", "imagenet-paper"])
    parser.add_argument("--gpu-gb", type=float, default=80.0, help="GPU memory (GB, 1e9 bytes)")
    parser.add_argument("--usable", type=float, default=0.7, help="the fraction of it the count may fill")
    args = parser.parse_args()
    budget = args.gpu_gb * 1e3 * args.usable
    for name in args.presets:
        config = validate(
            yaml.safe_load((REPO / "presets" / f"{name}.yaml").read_text()),
            REPO / "workflow" / "schemas" / "config.schema.yaml",
        )
        with torch.device("meta"):
            nets = networks(config)
        sizes = {net: measure(*spec) for net, spec in nets.items()}
        print(f"\n### {name}\n\n| network | input | weights MB | forward MB/image | forward+backward MB/image |")
        print("|---|---|---:|---:|---:|")
        for net, m in sizes.items():
            backward = f"{m['backward']:,.1f}" if "backward" in m else "-"
            shape = "x".join(map(str, nets[net][1]))
            print(f"| {net} | {shape} | {m['weights']:,.0f} | {m['forward']:,.1f} | {backward} |")
        print(f"\n| stage | weights MB | MB/image | largest power-of-two batch in {budget / 1e3:g} GB |")
        print("|---|---:|---:|---:|")
        for stage, (mode, jobs) in stages(config).items():
            # the job that fits the fewest images sets the rule's batch size
            weights, per_image, batch = min((fit(sizes, job, mode, budget) for job in jobs), key=lambda f: f[2])
            print(f"| {stage} | {weights:,.0f} | {per_image:,.1f} | {batch} |")


if __name__ == "__main__":
    main()
