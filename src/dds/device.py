"""Device selection: `auto` picks CUDA when present, and each job gets its own GPU."""

import functools

import torch

from dds import gpu_lease


@functools.cache
def job_gpu() -> gpu_lease.Lease | None:
    """This process's GPU lease (see dds.gpu_lease), taken on first use and kept, through
    this cache, until the process ends: a workflow job is one process."""
    return gpu_lease.acquire(torch.cuda.device_count())


def resolve_device(name: str) -> torch.device:
    """`auto` or `cuda`: a GPU leased for this job when several are visible, else the one
    there is (or the CPU for `auto` without CUDA). `cuda:N` and `cpu` are taken as given."""
    if name == "auto" and not torch.cuda.is_available():
        return torch.device("cpu")
    device = torch.device("cuda" if name == "auto" else name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"config device={name!r} but CUDA is not available here; use device: auto or cpu")
    if device.type == "cuda" and device.index is None:
        lease = job_gpu()
        if lease is not None:
            # also the current device, for code that allocates on plain "cuda"
            torch.cuda.set_device(lease.index)
            return torch.device("cuda", lease.index)
    return device
