"""GPU leases without a GPU: the device count is simulated, the locks are real, and the
jobs are real processes (forked), so the kernel's lock semantics are what is tested."""

import multiprocessing
import os
import signal
import time

import pytest
import torch

from dds import device, gpu_lease

FORK = multiprocessing.get_context("fork")


def hold(count, directory, queue, visible=None):
    """A job: lease one of `count` devices, report (index, id), hold it until killed."""
    if visible is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = visible
    lease = gpu_lease.acquire(count, directory, timeout=30)
    queue.put((lease.index, lease.device_id))
    time.sleep(120)


class Jobs:
    """Holder processes started by a test, all killed at its end (no shared Event: a
    process killed while waiting on one leaves it locked for everyone else)."""

    def __init__(self, directory):
        self.directory, self.queue, self.procs = directory, FORK.Queue(), []

    def start(self, count, visible=None):
        proc = FORK.Process(target=hold, args=(count, self.directory, self.queue, visible))
        proc.start()
        self.procs.append(proc)
        return proc, self.queue.get(timeout=30)

    def end(self):
        for proc in self.procs:
            proc.kill()
            proc.join(10)


@pytest.fixture
def jobs(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    started = Jobs(tmp_path)
    yield started
    started.end()


def test_concurrent_jobs_get_distinct_devices(jobs):
    taken = [jobs.start(4)[1] for _ in range(4)]
    assert sorted(index for index, _ in taken) == [0, 1, 2, 3]
    assert sorted(device_id for _, device_id in taken) == ["0", "1", "2", "3"]


def test_a_killed_jobs_lease_is_freed(jobs, tmp_path):
    first, (index, _) = jobs.start(2)
    jobs.start(2)
    with pytest.raises(gpu_lease.LeaseTimeout):
        gpu_lease.acquire(2, tmp_path, timeout=0.2)
    os.kill(first.pid, signal.SIGKILL)
    first.join(10)
    lease = gpu_lease.acquire(2, tmp_path, timeout=5)
    assert lease.index == index
    lease.release()


def test_waits_for_a_device_and_times_out_with_a_clear_message(jobs, tmp_path):
    holders = [jobs.start(2)[0] for _ in range(2)]
    started = time.monotonic()
    with pytest.raises(gpu_lease.LeaseTimeout) as error:
        gpu_lease.acquire(2, tmp_path, timeout=0.6)
    assert time.monotonic() - started >= 0.6
    message = str(error.value)
    assert "all 2 GPUs (0, 1)" in message and "--resources gpu=N" in message
    assert gpu_lease.TIMEOUT_ENV in message and str(tmp_path) in message
    assert all(str(proc.pid) in message for proc in holders)
    # a job that waits gets the device as soon as its holder ends
    killer = FORK.Process(target=lambda: (time.sleep(0.5), os.kill(holders[1].pid, signal.SIGKILL)))
    killer.start()
    lease = gpu_lease.acquire(2, tmp_path, timeout=20)
    assert lease.index == 1 and time.monotonic() - started < 15
    lease.release()
    killer.join(10)


def test_cuda_visible_devices_names_the_physical_devices(jobs, tmp_path):
    # two runs that list the same GPUs in opposite orders still take different ones
    _, (index_a, id_a) = jobs.start(2, visible="5,7")
    _, (index_b, id_b) = jobs.start(2, visible="7,5")
    assert (index_a, id_a) == (0, "5") and (index_b, id_b) == (0, "7")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-5.lock", "gpu-7.lock"]


def test_nothing_to_lease_without_a_gpu_or_with_one_assigned(tmp_path, monkeypatch):
    assert gpu_lease.acquire(0, tmp_path) is None
    # SLURM (and other schedulers) set CUDA_VISIBLE_DEVICES to the one GPU they gave the job
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    assert gpu_lease.acquire(1, tmp_path) is None
    assert list(tmp_path.iterdir()) == []


def test_a_bad_timeout_setting_names_the_variable(monkeypatch):
    monkeypatch.setenv(gpu_lease.TIMEOUT_ENV, "soon")
    with pytest.raises(ValueError, match=f"{gpu_lease.TIMEOUT_ENV}='soon'"):
        gpu_lease.lease_timeout()


@pytest.fixture
def three_gpus(tmp_path, monkeypatch):
    """torch believes it sees 3 GPUs; set_device calls are recorded."""
    current = []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv(gpu_lease.LOCK_DIR_ENV, str(tmp_path))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(torch.cuda, "set_device", current.append)
    device.job_gpu.cache_clear()
    yield current
    if device.job_gpu() is not None:
        device.job_gpu().release()
    device.job_gpu.cache_clear()


def test_resolve_device_uses_the_jobs_lease(three_gpus, tmp_path):
    taken = gpu_lease.acquire(3, tmp_path)  # another job holds cuda:0
    assert device.resolve_device("auto") == torch.device("cuda", 1)
    assert device.resolve_device("cuda") == torch.device("cuda", 1)  # one lease per process
    assert three_gpus == [1, 1]
    assert device.resolve_device("cuda:2") == torch.device("cuda", 2)  # an explicit device is kept
    assert device.resolve_device("cpu") == torch.device("cpu")
    taken.release()
