"""dds: diffusion denoised smoothing, a library and Snakemake workflow that measures
how denoising defences protect image classifiers against adversarial attacks."""

__version__ = "0.1.0"
