"""Small shared fixtures for the unit tests of dds (tiny data, tiny models)."""

import os

import pytest
import torch

# The models here are tiny: one thread is as fast as two, and it avoids the large slow-downs
# of oversubscribed OpenMP threads when a workflow shares the CPU cores with the tests.
if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(1)

# a diffusers UNet small enough to run in milliseconds on a CPU
TINY_UNET = dict(block_out_channels=[8, 16], layers_per_block=1, attention_levels=[])


@pytest.fixture(scope="session")
def digits8():
    """The scikit-learn digits at their native 8x8 (1797 images, one channel)."""
    from dds.data import load_digits

    return load_digits(8)


@pytest.fixture
def tiny_unet():
    """A freshly built tiny UNet for 8x8 single-channel images, with a fixed initialisation."""
    from dds.diffusion import build_unet

    torch.manual_seed(0)
    return build_unet(8, 1, TINY_UNET).eval()


@pytest.fixture
def compile_latex(tmp_path):
    """Compile a LaTeX table body in a minimal booktabs document with pdflatex (skip when
    pdflatex is absent); fails with pdflatex's output when it does not compile."""
    import shutil
    import subprocess

    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        pytest.skip("pdflatex not on PATH (apt-get install texlive-latex-base texlive-latex-recommended)")

    def run(body: str) -> None:
        (tmp_path / "doc.tex").write_text(
            "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n" + body + "\\end{document}\n")
        done = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout[-3000:]
        assert (tmp_path / "doc.pdf").stat().st_size > 0

    return run
