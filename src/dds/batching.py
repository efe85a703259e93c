"""Batch loops that survive a CUDA out-of-memory error: the batch that failed is retried at
half its size after emptying the CUDA cache, and the smaller size holds for the rest of the
job (this process) in that stage, so the error is not met again batch after batch.

The results do not change: every random draw of the stages is seeded per image
(dds.seeding.image_normal) or per draw index (dds.smoothing.sampling.noise_draws), and the
models run in eval mode, where an image's output does not depend on its neighbours. The
main attack's random draws (PGD's random start, AutoAttack) are the exception: they are
seeded per batch (dds.attacks.generate.attack)."""

import logging

import torch

log = logging.getLogger(__name__)

# stage -> the batch size it fell back to in this process
_FALLBACK: dict[str, int] = {}


def in_batches(stage: str, total: int, batch_size: int, step) -> list:
    """[step(start, stop), ...] over consecutive ranges covering 0..total-1, each at most
    `batch_size` long (or the smaller size `stage` fell back to earlier in this job).

    When `step` raises torch.OutOfMemoryError (torch.cuda.OutOfMemoryError is the same
    class), the CUDA cache is emptied and the same range is retried at half its length,
    with a warning naming `stage` and both sizes; at length 1 a RuntimeError says how to
    go on. `step` must not keep anything of a range that failed."""
    if batch_size < 1:
        raise ValueError(f"{stage}: batch_size must be >= 1, got {batch_size}")
    size = min(batch_size, _FALLBACK.get(stage, batch_size))
    results, start = [], 0
    while start < total:
        stop = min(total, start + size)
        try:
            results.append(step(start, stop))
            start = stop
            continue
        except torch.OutOfMemoryError as error:
            if stop - start == 1:
                raise RuntimeError(
                    f"{stage}: CUDA out of memory even at batch size 1 ({error}). To fix: free the "
                    "GPU of other processes, or run the job on a GPU with more memory"
                ) from error
        # here, past the except block, the error's traceback no longer holds the failed
        # batch's tensors, so emptying the cache can free them
        size = (stop - start) // 2
        _FALLBACK[stage] = size
        log.warning(
            "%s: CUDA out of memory at batch size %d; retrying at batch size %d, kept for the rest of this job",
            stage,
            stop - start,
            size,
        )
        torch.cuda.empty_cache()
    return results
