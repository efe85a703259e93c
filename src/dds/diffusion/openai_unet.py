"""The OpenAI diffusion UNet (improved-diffusion, Nichol & Dhariwal 2021; guided-diffusion,
Dhariwal & Nichol 2021), written for dds so that the official checkpoints load with
`strict=True`: module names, parameter names and shapes are those of the official code
(`time_embed.0`, `input_blocks.N.M.in_layers.2.weight`, `middle_block`, `output_blocks`,
`out.2`, `qkv`/`proj_out`, `op` for strided-conv downsampling, `conv` for upsampling, ...).

Only the parts the denoisers need: 2-D images, unconditional, float32. Two attention
layouts exist: "legacy" (the qkv channels are grouped per head, then split into q, k, v:
improved-diffusion's QKVAttention, guided-diffusion's QKVAttentionLegacy, the default of
both code bases) and "new" (split into q, k, v first, then into heads: guided-diffusion's
`use_new_attention_order`). The two checkpoints named in CHECKPOINTS both use "legacy".
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from dds.diffusion.checkpoints import UNetConfig, checkpoint_spec


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [cos(t w_i), sin(t w_i)] with w_i = max_period^(-i/half); t may be
    fractional (rescaled timesteps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class GroupNorm32(nn.GroupNorm):
    """GroupNorm with 32 groups, computed in float32 whatever the input precision."""

    def __init__(self, channels: int):
        super().__init__(32, channels)

    def forward(self, x):
        return super().forward(x.float()).type(x.dtype)


class TimestepBlock(nn.Module):
    """A block whose forward takes the timestep embedding as a second argument."""


class TimestepSequential(nn.Sequential):
    """Sequential that hands the timestep embedding to the TimestepBlocks among its layers."""

    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, TimestepBlock) else layer(x)
        return x


class Downsample(nn.Module):
    """Halve the resolution: a stride-2 3x3 conv (`op`, with weights) or 2x2 average pooling."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1) if use_conv else nn.AvgPool2d(2)

    def forward(self, x):
        return self.op(x)


class Upsample(nn.Module):
    """Double the resolution by nearest neighbours, then an optional 3x3 conv (`conv`)."""

    def __init__(self, channels: int, use_conv: bool):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1) if use_conv else None

    def forward(self, x):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return x if self.conv is None else self.conv(x)


class ResBlock(TimestepBlock):
    """Residual block conditioned on the timestep embedding; `up`/`down` make it the
    resampling block (resblock_updown), resampling both branches between norm and conv."""

    def __init__(
        self, channels: int, emb_channels: int, out_channels: int, cfg: UNetConfig, up: bool = False, down: bool = False
    ):
        super().__init__()
        self.use_scale_shift_norm = cfg.use_scale_shift_norm
        self.in_layers = nn.Sequential(
            GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1)
        )
        self.updown = up or down
        if up:
            self.h_upd, self.x_upd = Upsample(channels, False), Upsample(channels, False)
        elif down:
            self.h_upd, self.x_upd = Downsample(channels, False), Downsample(channels, False)
        self.emb_layers = nn.Sequential(
            nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if cfg.use_scale_shift_norm else out_channels)
        )
        # the Dropout keeps its slot even at p=0: the conv after it must be out_layers.3
        self.out_layers = nn.Sequential(
            GroupNorm32(out_channels),
            nn.SiLU(),
            nn.Dropout(cfg.dropout),
            nn.Conv2d(out_channels, out_channels, 3, padding=1),
        )
        # the official code offers a 3x3 skip conv too, but no released checkpoint uses it
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x, emb):
        if self.updown:
            h = self.in_layers[:-1](x)
            h, x = self.h_upd(h), self.x_upd(x)
            h = self.in_layers[-1](h)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[..., None, None]
        if self.use_scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over all spatial positions, with 1x1 Conv1d projections."""

    def __init__(self, channels: int, heads: int, order: str):
        super().__init__()
        self.heads, self.order = heads, order
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        ch, n = c // self.heads, qkv.shape[-1]
        if self.order == "legacy":  # [q k v] of head 0, then of head 1, ...
            q, k, v = qkv.reshape(b, self.heads, 3 * ch, n).split(ch, dim=2)
        else:  # all heads' q, then all k, then all v
            q, k, v = (part.reshape(b, self.heads, ch, n) for part in qkv.chunk(3, dim=1))
        # softmax(q^T k / sqrt(ch)) v, as the official einsum version computes it
        h = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        h = h.transpose(-1, -2).reshape(b, c, n)
        return (x + self.proj_out(h)).reshape(b, c, *spatial)


class UNetModel(nn.Module):
    """The UNet: time embedding MLP, encoder (`input_blocks`), `middle_block`, decoder
    (`output_blocks`, each fed the matching encoder activation), and `out`."""

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        self.config = cfg
        mc, emb_dim = cfg.model_channels, 4 * cfg.model_channels
        attention_ds = {cfg.image_size // r for r in cfg.attention_resolutions}
        self.time_embed = nn.Sequential(nn.Linear(mc, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def res(cin, cout, **updown):
            return ResBlock(cin, emb_dim, cout, cfg, **updown)

        def attention(channels, upsample=False):
            return AttentionBlock(channels, cfg.heads(channels, upsample), cfg.attention_order)

        ch = int(cfg.channel_mult[0] * mc)
        self.input_blocks = nn.ModuleList([TimestepSequential(nn.Conv2d(cfg.in_channels, ch, 3, padding=1))])
        skip_channels, ds = [ch], 1
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                layers = [res(ch, int(mult * mc))]
                ch = int(mult * mc)
                if ds in attention_ds:
                    layers.append(attention(ch))
                self.input_blocks.append(TimestepSequential(*layers))
                skip_channels.append(ch)
            if level < len(cfg.channel_mult) - 1:
                down = res(ch, ch, down=True) if cfg.resblock_updown else Downsample(ch, cfg.conv_resample)
                self.input_blocks.append(TimestepSequential(down))
                skip_channels.append(ch)
                ds *= 2

        self.middle_block = TimestepSequential(res(ch, ch), attention(ch), res(ch, ch))

        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                layers = [res(ch + skip_channels.pop(), int(mult * mc))]
                ch = int(mult * mc)
                if ds in attention_ds:
                    layers.append(attention(ch, upsample=True))
                if level and i == cfg.num_res_blocks:
                    layers.append(res(ch, ch, up=True) if cfg.resblock_updown else Upsample(ch, cfg.conv_resample))
                    ds //= 2
                self.output_blocks.append(TimestepSequential(*layers))

        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), nn.Conv2d(ch, cfg.out_channels, 3, padding=1))

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """x [N, C, H, W] in the diffusion's [-1,1] space, timesteps [N] as the network was
        trained to see them (see OpenAIEps for the rescaling); returns [N, out_channels, H, W]."""
        emb = self.time_embed(timestep_embedding(timesteps, self.config.model_channels))
        h, skips = x, []
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)


class OpenAIEps(nn.Module):
    """eps_model(x_t, t) for OneShotDenoiser: feeds the network t, or t * 1000 / T for
    checkpoints trained with rescaled timesteps, and returns only the epsilon channels."""

    def __init__(self, unet: UNetModel, num_timesteps: int, rescale_timesteps: bool):
        super().__init__()
        self.unet = unet
        self.num_timesteps = num_timesteps
        self.rescale_timesteps = rescale_timesteps

    def model_timesteps(self, t: torch.Tensor) -> torch.Tensor:
        return t.float() * (1000.0 / self.num_timesteps) if self.rescale_timesteps else t

    def forward(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.unet(x_t, self.model_timesteps(t))[:, : self.unet.config.in_channels]


def build_unet(spec) -> UNetModel:
    return UNetModel(checkpoint_spec(spec).unet)
