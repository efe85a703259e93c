"""DDPMs (diffusers UNet, dds.diffusion.ddpm): save and load with the noise schedule,
tamper detection, and deterministic training."""

import pytest
import torch

from conftest import TINY_UNET, tamper
from dds.diffusion.ddpm import DiffusersEps, build_scheduler, build_unet, load_ddpm, save_ddpm, train_ddpm
from dds.io import DataFileError, ImageSet

SCHEDULE = {"num_train_timesteps": 1000, "beta_schedule": "linear"}


def test_ddpm_round_trip(tmp_path, tiny_unet):
    scheduler = build_scheduler(SCHEDULE)
    path = tmp_path / "ddpm.safetensors"
    save_ddpm(tiny_unet, scheduler, path)
    eps_model, abar = load_ddpm(path)
    assert not eps_model.training
    assert abar.dtype == torch.float64 and torch.equal(abar, scheduler.alphas_cumprod.double())
    gen = torch.Generator().manual_seed(0)
    x_t = torch.randn((2, 1, 8, 8), generator=gen)
    t = torch.tensor([10, 700])
    with torch.no_grad():
        expected = DiffusersEps(tiny_unet)(x_t, t)
        assert expected.shape == x_t.shape and expected.abs().sum() > 0
        assert torch.equal(eps_model(x_t, t), expected)


def test_ddpm_round_trip_keeps_cosine_schedule(tmp_path, tiny_unet):
    scheduler = build_scheduler({"num_train_timesteps": 50, "beta_schedule": "squaredcos_cap_v2"})
    save_ddpm(tiny_unet, scheduler, tmp_path / "ddpm.safetensors")
    _, abar = load_ddpm(tmp_path / "ddpm.safetensors")
    assert len(abar) == 50 and torch.equal(abar, scheduler.alphas_cumprod.double())


TAMPER_DDPM = {
    "missing key": lambda t: t.pop("unet.conv_out.weight"),
    "wrong shape": lambda t: t.update({"unet.conv_out.bias": torch.zeros(2)}),
    "missing schedule": lambda t: t.pop("alphas_cumprod"),
}


@pytest.mark.parametrize("case", sorted(TAMPER_DDPM))
def test_tampered_ddpm_names_file(tmp_path, tiny_unet, case):
    path = tmp_path / "ddpm.safetensors"
    save_ddpm(tiny_unet, build_scheduler(SCHEDULE), path)
    tamper(path, TAMPER_DDPM[case])
    with pytest.raises(DataFileError) as info:
        load_ddpm(path)
    assert str(path) in str(info.value)


def test_train_ddpm_is_deterministic(digits8):
    train = ImageSet(digits8.idx[:32], digits8.labels[:32], digits8.images[:32])
    states = []
    for seed in (3, 3, 4):
        torch.manual_seed(0)
        unet = build_unet(8, 1, TINY_UNET)
        metrics = train_ddpm(
            unet, build_scheduler(SCHEDULE), train, steps=3, batch_size=4, lr=1e-3, seed=seed, device="cpu"
        )
        assert metrics["steps"] == 3 and metrics["final_loss"] > 0
        states.append(unet.state_dict())
    a, b, c = states
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_train_ddpm_draws_timesteps_up_to_max_timestep_only(digits8):
    """max_timestep (config key max_sigma) bounds the timesteps trained on; without it every
    timestep of the schedule is drawn."""
    train = ImageSet(digits8.idx[:32], digits8.labels[:32], digits8.images[:32])
    seen = {}
    for top in (5, None):
        unet = build_unet(8, 1, TINY_UNET)
        drawn = []
        unet.register_forward_pre_hook(lambda module, args, drawn=drawn: drawn.append(args[1].clone()))
        metrics = train_ddpm(
            unet,
            build_scheduler(SCHEDULE),
            train,
            steps=4,
            batch_size=16,
            lr=1e-3,
            seed=0,
            device="cpu",
            max_timestep=top,
        )
        seen[top] = torch.cat(drawn)
        assert metrics["timesteps"] == (6 if top == 5 else SCHEDULE["num_train_timesteps"])
    assert seen[5].min() >= 0 and seen[5].max() == 5  # 64 draws from 0..5 reach 5
    assert seen[None].max() > 5
