"""The official OpenAI diffusion checkpoints dds knows: where each comes from, its UNet's
architecture (named after the official command-line flags) and the diffusion it was trained
with (`dds.diffusion.flags` describes any other model by those flags). Torch-free, so that
the config check before any job can use it without importing torch
(`dds.diffusion.openai_unet` builds the networks)."""

from dataclasses import dataclass, fields

ATTENTION_ORDERS = ("legacy", "new")


class FlagError(ValueError):
    """A flag value (or a missing flag) no UNet or diffusion fits; `flag` is the key of the
    denoiser's config mapping to fix, named as the official command-line flag."""

    def __init__(self, flag: str, message: str):
        super().__init__(message)
        self.flag = flag


@dataclass(frozen=True)
class UNetConfig:
    """Architecture of an OpenAI UNet, named after the official command-line flags.

    `model_channels` is the `--num_channels` flag. `attention_resolutions` are feature-map
    sizes in pixels (the `--attention_resolutions 32,16,8` flag), not downsampling rates.
    `num_head_channels`, when set, fixes the channels per head and overrides `num_heads` and
    `num_heads_upsample` (as in guided-diffusion); `num_heads_upsample` defaults to `num_heads`.
    """

    image_size: int
    model_channels: int
    num_res_blocks: int
    channel_mult: tuple
    attention_resolutions: tuple
    in_channels: int = 3
    learn_sigma: bool = False
    num_heads: int = 1
    num_head_channels: int | None = None
    num_heads_upsample: int | None = None
    use_scale_shift_norm: bool = False
    resblock_updown: bool = False
    dropout: float = 0.0
    conv_resample: bool = True
    attention_order: str = "legacy"

    def __post_init__(self):
        object.__setattr__(self, "channel_mult", tuple(self.channel_mult))
        object.__setattr__(self, "attention_resolutions", tuple(int(r) for r in self.attention_resolutions))
        if self.attention_order not in ATTENTION_ORDERS:
            raise FlagError(
                "use_new_attention_order",
                f"attention_order={self.attention_order!r}; allowed: {', '.join(ATTENTION_ORDERS)}",
            )
        levels = len(self.channel_mult)
        if self.image_size % 2 ** (levels - 1):
            raise FlagError(
                "image_size",
                f"image_size={self.image_size} does not halve {levels - 1} times evenly, as the "
                f"{levels} levels of channel_mult {list(self.channel_mult)} need",
            )
        sizes = [self.image_size // 2**level for level in range(levels)]
        bad = [r for r in self.attention_resolutions if r not in sizes]
        if bad:
            raise FlagError(
                "attention_resolutions",
                f"attention_resolutions {bad} are not feature-map sizes of this UNet; "
                f"with image_size={self.image_size} they are {sizes}",
            )
        widths = [int(m * self.model_channels) for m in self.channel_mult]
        if any(w % 32 for w in widths):
            raise FlagError(
                "num_channels",
                f"every level width num_channels*channel_mult must be a multiple of 32 "
                f"(GroupNorm with 32 groups); got {sorted(set(widths))}",
            )
        # every attention block's heads, checked here rather than when the network is built
        for width, size in zip(widths, sizes, strict=True):
            if size in self.attention_resolutions:
                self.heads(width)
                self.heads(width, upsample=True)
        self.heads(widths[-1])  # the middle block's

    @property
    def out_channels(self) -> int:
        """Learned-sigma networks output epsilon and the variance interpolation: 2C channels."""
        return 2 * self.in_channels if self.learn_sigma else self.in_channels

    def heads(self, channels: int, upsample: bool = False) -> int:
        if self.num_head_channels is not None:
            if channels % self.num_head_channels:
                raise FlagError(
                    "num_head_channels",
                    f"{channels} attention channels are not divisible by num_head_channels={self.num_head_channels}",
                )
            return channels // self.num_head_channels
        flag = "num_heads_upsample" if upsample and self.num_heads_upsample is not None else "num_heads"
        heads = getattr(self, flag)
        if channels % heads:
            raise FlagError(flag, f"{channels} attention channels are not divisible by {flag}={heads}")
        return heads


@dataclass(frozen=True)
class OpenAICheckpoint:
    """An official checkpoint or a model of one's own: where it comes from (`url`; None for
    a file the config gives by path only), its UNet, and the diffusion it was trained with.
    `rescale_timesteps`: the network was fed t * 1000 / num_timesteps, not t."""

    name: str
    url: str | None
    unet: UNetConfig
    schedule: str
    num_timesteps: int
    rescale_timesteps: bool

    def alphas_cumprod(self):
        """The schedule's cumulative products (float64 torch tensor)."""
        from dds.diffusion.schedules import alphas_cumprod  # torch: only where a schedule is needed

        return alphas_cumprod(self.schedule, self.num_timesteps)


# a table: each checkpoint's settings read together, as in the official READMEs
# fmt: off
CHECKPOINTS = {
    c.name: c
    for c in (
        # improved-diffusion README: --image_size 32 --num_channels 128 --num_res_blocks 3
        # --learn_sigma True --dropout 0.3 --diffusion_steps 4000 --noise_schedule cosine; the
        # rest are script_util defaults (num_heads 4, attention 16,8, scale-shift norm,
        # rescale_timesteps True) and channel_mult (1,2,2,2) for 32x32.
        OpenAICheckpoint(
            name="cifar10_uncond_50M_500K",
            url="https://openaipublic.blob.core.windows.net/diffusion/march-2021/cifar10_uncond_50M_500K.pt",
            unet=UNetConfig(image_size=32, model_channels=128, num_res_blocks=3, channel_mult=(1, 2, 2, 2),
                            attention_resolutions=(16, 8), learn_sigma=True, num_heads=4,
                            use_scale_shift_norm=True, dropout=0.3),
            schedule="cosine", num_timesteps=4000, rescale_timesteps=True,
        ),
        # guided-diffusion README (256x256 unconditional): --attention_resolutions 32,16,8
        # --diffusion_steps 1000 --image_size 256 --learn_sigma True --noise_schedule linear
        # --num_channels 256 --num_head_channels 64 --num_res_blocks 2 --resblock_updown True
        # --use_scale_shift_norm True; defaults: dropout 0, legacy attention order,
        # rescale_timesteps False, channel_mult (1,1,2,2,4,4) for 256x256.
        OpenAICheckpoint(
            name="256x256_diffusion_uncond",
            url="https://openaipublic.blob.core.windows.net/diffusion/jul-2021/256x256_diffusion_uncond.pt",
            unet=UNetConfig(image_size=256, model_channels=256, num_res_blocks=2, channel_mult=(1, 1, 2, 2, 4, 4),
                            attention_resolutions=(32, 16, 8), learn_sigma=True, num_heads=4,
                            num_head_channels=64, use_scale_shift_norm=True, resblock_updown=True),
            schedule="linear", num_timesteps=1000, rescale_timesteps=False,
        ),
    )
}
# fmt: on


def checkpoint_spec(spec) -> OpenAICheckpoint:
    """An OpenAICheckpoint from a name in CHECKPOINTS, a dict (as in a config file, with
    `unet` a dict of UNetConfig fields), or an OpenAICheckpoint."""
    if isinstance(spec, OpenAICheckpoint):
        return spec
    if isinstance(spec, str):
        if spec not in CHECKPOINTS:
            raise ValueError(f"unknown OpenAI checkpoint {spec!r}; known: {', '.join(sorted(CHECKPOINTS))}")
        return CHECKPOINTS[spec]
    if isinstance(spec, dict):
        for cls, given in ((OpenAICheckpoint, spec), (UNetConfig, spec.get("unet", {}))):
            allowed = {f.name for f in fields(cls)}
            unknown = sorted(set(given) - allowed)
            if unknown:
                raise ValueError(f"unknown {cls.__name__} key(s) {unknown}; allowed: {', '.join(sorted(allowed))}")
        try:
            return OpenAICheckpoint(**{**spec, "unet": UNetConfig(**spec["unet"])})
        except (KeyError, TypeError) as err:
            raise ValueError(
                f"incomplete OpenAI checkpoint spec ({err}); required: name, url, unet, schedule, "
                "num_timesteps, rescale_timesteps"
            ) from None
    raise TypeError(f"an OpenAI checkpoint is a name, a dict or an OpenAICheckpoint, not {type(spec).__name__}")
