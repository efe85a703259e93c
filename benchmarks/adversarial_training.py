"""Standard against adversarial (PGD) training on the embedded default's data (digits at
16x16, the workflow's split and seeds): clean and PGD held-out accuracy and training time.

    OMP_NUM_THREADS=1 python benchmarks/adversarial_training.py
    OMP_NUM_THREADS=1 python benchmarks/adversarial_training.py --epochs 8 --fraction 0.5 --variant dot
    OMP_NUM_THREADS=1 python benchmarks/adversarial_training.py --skip-standard --variant none

The PGD of the evaluation is the default config's `pgd` attack (5 steps of 2.5 * eps / 5, no
random start) at --eval-epsilon; the standard model is the default config's `resnet`.
"""

import argparse
import time

import torch

from dds.attacks.generate import attack
from dds.data import sampling
from dds.io import ImageSet
from dds.models.classifiers import accuracy, build_classifier, train_classifier
from dds.seeding import derive_seed

EVAL_ATTACK = {"method": "pgd_linf", "steps": 5, "step_size": 2.5, "step_mode": "relative", "random_start": False}


def run(name, train, heldout, args, feature_denoising=None, adversarial=None, epochs=8) -> dict:
    mean, std = train.images.mean((0, 2, 3)), train.images.std((0, 2, 3))
    torch.manual_seed(derive_seed(args.seed, "classifier-init", name))
    model = build_classifier("resnet18", {}, 1, 10, mean, std, feature_denoising)
    metrics = train_classifier(
        model, train, heldout, epochs, 64, 0.002, 0.05, derive_seed(args.seed, "classifier", name), "cpu", adversarial
    )
    adv = attack(model, EVAL_ATTACK, args.eval_epsilon, heldout.images, heldout.labels, 256, 0, "cpu")
    robust = accuracy(model, ImageSet(heldout.idx, heldout.labels, adv), 256, "cpu")
    return {
        "model": name,
        "epochs": epochs,
        "clean": metrics["heldout_accuracy"],
        "pgd": robust,
        "seconds": metrics["seconds"],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8, help="epochs of the adversarial training")
    parser.add_argument("--epsilon", type=float, default=0.1, help="training PGD radius")
    parser.add_argument("--steps", type=int, default=5, help="training PGD steps")
    parser.add_argument("--step-size", type=float, default=2.5, help="step = step_size * epsilon / steps")
    parser.add_argument("--fraction", type=float, default=0.5, help="adversarial share of each batch")
    parser.add_argument(
        "--variant",
        choices=["softmax", "dot", "none"],
        default="softmax",
        help="non-local variant of the blocks after every stage; none: a plain ResNet",
    )
    parser.add_argument("--eval-epsilon", type=float, default=0.1)
    parser.add_argument("--skip-standard", action="store_true")
    args = parser.parse_args()
    train, heldout = sampling.split(sampling.load_digits(16), 300, args.seed)
    adversarial = {
        "epsilon": args.epsilon,
        "steps": args.steps,
        "step_size": args.step_size,
        "step_mode": "relative",
        "random_start": True,
        "fraction": args.fraction,
    }
    rows = [] if args.skip_standard else [run("resnet", train, heldout, args)]
    denoising = None if args.variant == "none" else {"variant": args.variant, "stages": [1, 2, 3, 4]}
    rows.append(
        run(
            "adv-resnet" if denoising is None else "fd-resnet",
            train,
            heldout,
            args,
            denoising,
            adversarial,
            args.epochs,
        )
    )
    print(f"threads {torch.get_num_threads()}, adversarial training {adversarial}, variant {args.variant}")
    for row in rows:
        print(
            f"{row['model']:>10}: {row['epochs']} epochs, clean {row['clean']:.3f}, "
            f"PGD eps {args.eval_epsilon:g} {row['pgd']:.3f}, {row['seconds']:.1f} s training"
        )


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - start:.1f} s")
