"""Any improved- or guided-diffusion model described by the official command-line flags
(script_util's names), as the config gives them: resolved to an OpenAICheckpoint, with the
two known checkpoints' values as defaults. Torch-free, like dds.diffusion.checkpoints: the
config check uses it before any job."""

from dds.diffusion.checkpoints import CHECKPOINTS, FlagError, OpenAICheckpoint, UNetConfig

# The official command-line flags (improved- and guided-diffusion's script_util) that give a
# model's architecture and diffusion, as config keys of an openai denoiser. Flags that change
# neither the weights nor the one-shot denoiser (use_fp16, use_checkpoint, timestep_respacing)
# are left out, as are class_cond and predict_xstart: the denoiser needs an unconditional
# network that predicts epsilon.
FLAGS = (
    "image_size",
    "num_channels",
    "num_res_blocks",
    "channel_mult",
    "attention_resolutions",
    "num_heads",
    "num_head_channels",
    "num_heads_upsample",
    "learn_sigma",
    "use_scale_shift_norm",
    "resblock_updown",
    "dropout",
    "use_new_attention_order",
    "noise_schedule",
    "diffusion_steps",
    "rescale_timesteps",
)
# what a model of one's own must state: rescale_timesteps defaults to True in improved-diffusion
# and False in guided-diffusion, and the others are what a trained model rarely left at defaults
REQUIRED_FLAGS = (
    "image_size",
    "num_channels",
    "num_res_blocks",
    "learn_sigma",
    "noise_schedule",
    "diffusion_steps",
    "rescale_timesteps",
)
# the script_util defaults both code bases share, for the other flags (-1: unset; flags
# improved-diffusion lacks behave there as these defaults do)
DEFAULT_FLAGS = {
    "attention_resolutions": "16,8",
    "num_heads": 4,
    "num_head_channels": -1,
    "num_heads_upsample": -1,
    "use_scale_shift_norm": True,
    "resblock_updown": False,
    "dropout": 0.0,
    "use_new_attention_order": False,
}
# channel_mult when not given, from image_size, as the official create_model derives it
CHANNEL_MULT = {256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4), 32: (1, 2, 2, 2)}


def checkpoint_flags(checkpoint: OpenAICheckpoint) -> dict:
    """The official flags that describe `checkpoint` (lists for the comma-separated ones)."""
    unet = checkpoint.unet
    return {
        "image_size": unet.image_size,
        "num_channels": unet.model_channels,
        "num_res_blocks": unet.num_res_blocks,
        "channel_mult": list(unet.channel_mult),
        "attention_resolutions": list(unet.attention_resolutions),
        "num_heads": unet.num_heads,
        "num_head_channels": -1 if unet.num_head_channels is None else unet.num_head_channels,
        "num_heads_upsample": -1 if unet.num_heads_upsample is None else unet.num_heads_upsample,
        "learn_sigma": unet.learn_sigma,
        "use_scale_shift_norm": unet.use_scale_shift_norm,
        "resblock_updown": unet.resblock_updown,
        "dropout": unet.dropout,
        "use_new_attention_order": unet.attention_order == "new",
        "noise_schedule": checkpoint.schedule,
        "diffusion_steps": checkpoint.num_timesteps,
        "rescale_timesteps": checkpoint.rescale_timesteps,
    }


def _integers(flag: str, value) -> tuple:
    """A comma-separated flag ("32,16,8", as on the official command line; YAML reads a lone
    "16" as a number) or a list, as ints."""
    if isinstance(value, int):
        return (value,)
    if isinstance(value, str):
        try:
            return tuple(int(part) for part in value.split(","))
        except ValueError:
            raise FlagError(
                flag, f"{flag}={value!r} is not a comma-separated list of integers, e.g. '32,16,8'"
            ) from None
    return tuple(int(v) for v in value)


def openai_checkpoint(name: str, flags: dict, url: str | None = None) -> OpenAICheckpoint:
    """Checkpoint `name` described by official flags (FLAGS). The flags not given take the
    registry's values for a name in CHECKPOINTS; any other name is a model of one's own, which
    must give REQUIRED_FLAGS and takes DEFAULT_FLAGS for the rest. channel_mult, unless given,
    is derived from image_size (CHANNEL_MULT). FlagError names the flag to fix."""
    unknown = sorted(set(flags) - set(FLAGS))
    if unknown:
        raise FlagError(unknown[0], f"unknown flag(s) {unknown}; the flags are {', '.join(FLAGS)}")
    known = CHECKPOINTS.get(name)
    if known is None:
        missing = [flag for flag in REQUIRED_FLAGS if flag not in flags]
        if missing:
            raise FlagError(
                "checkpoint",
                f"{name!r} is not a checkpoint dds knows ({', '.join(CHECKPOINTS)}), so it is taken as a model of "
                f"your own, whose training flags must be given: {', '.join(missing)} missing",
            )
        defaults = DEFAULT_FLAGS
    else:
        defaults = checkpoint_flags(known)
        if "image_size" in flags:  # another size: channel_mult derived for it, unless given
            del defaults["channel_mult"]
    given = {**defaults, **flags}
    size = given["image_size"]
    if "channel_mult" in given:
        channel_mult = _integers("channel_mult", given["channel_mult"])
    elif size in CHANNEL_MULT:
        channel_mult = CHANNEL_MULT[size]
    else:
        raise FlagError(
            "channel_mult",
            f"the official scripts derive channel_mult only for image_size {', '.join(map(str, CHANNEL_MULT))}; "
            f"for image_size {size} give the one the model was trained with, e.g. '1,2,2,2'",
        )
    unset = -1  # the official value of an unset head setting
    unet = UNetConfig(
        image_size=size,
        model_channels=given["num_channels"],
        num_res_blocks=given["num_res_blocks"],
        channel_mult=channel_mult,
        attention_resolutions=_integers("attention_resolutions", given["attention_resolutions"]),
        learn_sigma=given["learn_sigma"],
        num_heads=given["num_heads"],
        num_head_channels=None if given["num_head_channels"] == unset else given["num_head_channels"],
        num_heads_upsample=None if given["num_heads_upsample"] == unset else given["num_heads_upsample"],
        use_scale_shift_norm=given["use_scale_shift_norm"],
        resblock_updown=given["resblock_updown"],
        dropout=given["dropout"],
        attention_order="new" if given["use_new_attention_order"] else "legacy",
    )
    return OpenAICheckpoint(
        name=name,
        url=url,
        unet=unet,
        schedule=given["noise_schedule"],
        num_timesteps=given["diffusion_steps"],
        rescale_timesteps=given["rescale_timesteps"],
    )


def denoiser_checkpoint(spec: dict) -> OpenAICheckpoint:
    """The checkpoint of an openai denoiser's config mapping: its name, url and flags."""
    return openai_checkpoint(spec["checkpoint"], {k: v for k, v in spec.items() if k in FLAGS}, spec.get("url"))
