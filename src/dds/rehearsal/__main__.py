"""python -m dds.rehearsal: rehearse the published setups on stand-ins (dds.rehearsal.run)."""

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

from dds.rehearsal.overlays import PRESETS, SIZES
from dds.rehearsal.run import RehearsalError, rehearse


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dds.rehearsal",
        description="Run each preset's whole workflow on stand-ins in the official formats, made offline, and "
        "check it: jobs run = dry-run count, every planned output, the comparison with the paper, the LaTeX tables.",
    )
    parser.add_argument("--preset", action="append", choices=PRESETS, help="a preset (repeat; default: both)")
    parser.add_argument("--size", choices=SIZES, default="default", help="the overlay's scale (default: default)")
    parser.add_argument("--device", default="cpu", help="the workflow's device: cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--cores", type=int, default=2, help="Snakemake's --cores (default: 2)")
    parser.add_argument("--workdir", type=Path, help="where to build and run (default: a new temporary folder)")
    parser.add_argument("--summary", type=Path, help="write the JSON summary here")
    parser.add_argument("--overlay", action="append", default=[], help="a further config overlay (repeat)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="dds-rehearsal-"))
    summary = {"workdir": str(workdir), "presets": {}}
    for preset in args.preset or PRESETS:
        try:
            result = rehearse(preset, args.size, args.device, workdir / preset, args.cores, args.overlay)
        except RehearsalError as err:
            result = {"preset": preset, "passed": False, "error": str(err)}
            print(f"{preset}: {err}", file=sys.stderr)
        summary["presets"][preset] = result
        print(json.dumps(result, indent=1))
    summary["passed"] = all(r["passed"] for r in summary["presets"].values())
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(summary, indent=1))
    print(f"rehearsal {'passed' if summary['passed'] else 'FAILED'}; results in {workdir}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
