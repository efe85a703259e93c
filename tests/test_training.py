"""Classifier training on CIFAR-10 (a tiny copy in the official pickle format): augmentation,
and resuming after an interruption with exactly the weights of an uninterrupted run."""

import pytest
import torch

from dds.io import load_tensors, read_json
from dds.models import training
from dds.models.classifiers import load_classifier
from dds.pipeline.classifiers import train_classifier

# dropout draws from torch's generator, augmentation from its own: both must be restored
SPEC = {
    "model": "resnet18",
    "kwargs": {"drop_rate": 0.3},
    "epochs": 2,
    "batch_size": 8,
    "lr": 0.003,
    "weight_decay": 0.05,
    "augment": True,
    "resize": {"size": 40, "mode": "bilinear"},
}


def train(paths, out, checkpoint):
    train_classifier(
        train=paths[0],
        eval=paths[1],
        weights=out / "resnet.safetensors",
        metrics=out / "resnet.json",
        name="resnet",
        spec=SPEC,
        seed=0,
        device="cpu",
        checkpoint=checkpoint,
    )
    return load_tensors(out / "resnet.safetensors")[0]


def test_resume_after_an_interruption_gives_the_uninterrupted_weights(cifar_sample, tmp_path, monkeypatch):
    straight = train(cifar_sample, tmp_path / "straight", tmp_path / "straight.checkpoint")
    assert not (tmp_path / "straight.checkpoint").exists()  # removed once the weights are written

    save = training.save_checkpoint

    def save_then_stop(*args, **kwargs):
        save(*args, **kwargs)
        raise KeyboardInterrupt  # killed right after the first epoch's checkpoint

    monkeypatch.setattr(training, "save_checkpoint", save_then_stop)
    checkpoint = tmp_path / "resumed.checkpoint"
    with pytest.raises(KeyboardInterrupt):
        train(cifar_sample, tmp_path / "resumed", checkpoint)
    assert not (tmp_path / "resumed" / "resnet.safetensors").exists()
    # safetensors and JSON only: nothing to unpickle
    assert sorted(p.name for p in checkpoint.iterdir()) == ["epoch1.safetensors", "state.json"]
    monkeypatch.setattr(training, "save_checkpoint", save)
    resumed = train(cifar_sample, tmp_path / "resumed", checkpoint)
    assert resumed.keys() == straight.keys()
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)
    log = read_json(tmp_path / "resumed" / "resnet.json")
    assert log["epochs"] == 2 and 0 <= log["heldout_accuracy"] <= 1
    assert load_classifier(tmp_path / "resumed" / "resnet.safetensors").resize == SPEC["resize"]


def test_a_checkpoint_of_another_run_is_discarded(tmp_path):
    model = torch.nn.Linear(2, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    order = torch.Generator().manual_seed(0)
    training.save_checkpoint(tmp_path / "ck", 1, {"lr": 0.1}, model, optimizer, schedule, None, {"order": order})
    assert (
        training.load_checkpoint(tmp_path / "ck", {"lr": 0.1}, model, optimizer, schedule, None, {"order": order}) == 1
    )
    assert (
        training.load_checkpoint(tmp_path / "ck", {"lr": 0.2}, model, optimizer, schedule, None, {"order": order}) == 0
    )
    assert not (tmp_path / "ck").exists()


def test_augmentation_crops_a_padded_window_and_flips():
    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).reshape(2, 3, 6, 6)
    out = training.augment_batch(x, torch.Generator().manual_seed(1), padding=2)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, dy : dy + 6, dx : dx + 6] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)
    again = training.augment_batch(x, torch.Generator().manual_seed(1), padding=2)
    assert torch.equal(out, again)
