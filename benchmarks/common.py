"""What the benchmarks share: the inference settings they run dds's path with (the
workflow config's `inference` section, config.yaml or --configfile, each key overridable on
the command line), and timing that waits for the GPU."""

import time
from pathlib import Path

import torch
import yaml

from dds.config import validate
from dds.evaluation.inference import Inference, resolve

REPO = Path(__file__).resolve().parents[1]


def add_arguments(parser) -> None:
    group = parser.add_argument_group("dds's inference settings (default: the workflow config's `inference`)")
    group.add_argument("--configfile", type=Path, default=REPO / "config.yaml")
    group.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    group.add_argument("--channels-last", choices=["auto", "true", "false"])
    group.add_argument("--compile", action="store_true", help="torch.compile dds's models")


def inference_settings(args, device) -> Inference:
    config = validate(yaml.safe_load(args.configfile.read_text()), REPO / "workflow/schemas/config.schema.yaml")
    spec = dict(config["inference"])
    if args.precision:
        spec["precision"] = args.precision
    if args.channels_last:
        spec["channels_last"] = {"true": True, "false": False}.get(args.channels_last, "auto")
    spec["compile"] = spec["compile"] or args.compile
    return resolve(spec, device)


def timed(run, device) -> tuple[float, object]:
    """(seconds, result) of run(), with queued GPU work finished on both sides."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = run()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start, out
