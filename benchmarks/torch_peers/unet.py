"""The DDPM UNet (ddpm_fmnist sizes) and jaxgen's diffusion training step.

Mirrors :class:`jaxgen.models.unet.UNet` (Ho et al. 2020's layout: pre-activation ResNet
blocks with GroupNorm/swish, timestep embedding added in every block, dropout, single-head
self-attention at the configured resolutions, stride-2 3×3 downsampling with TensorFlow's
"SAME" padding (0 before, 1 after), nearest ×2 upsampling + 3×3 conv, zero-initialised last
layers) and :meth:`jaxgen.families.diffusion.Diffusion.train_body` with
:func:`jaxgen.training.optim.make_optimizer`: per example t ~ U{0..T−1} and ε ~ N(0, I),
x_t = √ᾱ_t x₀ + √(1−ᾱ_t) ε, L_simple (mean squared error of ε), backward, global-norm
clipping, Adam with linear warmup, then the EMA of the parameters. Kernels:
variance_scaling(1, fan_avg, uniform) = Xavier-uniform.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.torch_peers import Peer


def _conv(c_in: int, c_out: int, k: int, stride: int = 1, zero: bool = False) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, k, stride, padding=(k // 2 if stride == 1 else 0))
    (nn.init.zeros_ if zero else nn.init.xavier_uniform_)(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


def _dense(c_in: int, c_out: int, zero: bool = False) -> nn.Linear:
    lin = nn.Linear(c_in, c_out)
    (nn.init.zeros_ if zero else nn.init.xavier_uniform_)(lin.weight)
    nn.init.zeros_(lin.bias)
    return lin


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    args = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class ResnetBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, temb: int, dropout: float, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in, eps=1e-6)
        self.conv1 = _conv(c_in, c_out, 3)
        self.temb_proj = _dense(temb, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out, eps=1e-6)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _conv(c_out, c_out, 3, zero=True)
        self.nin_shortcut = _conv(c_in, c_out, 1) if c_in != c_out else None

    def forward(self, x: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        if self.nin_shortcut is not None:
            x = self.nin_shortcut(x)
        return x + h


class AttnBlock(nn.Module):
    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=1e-6)
        self.q, self.k, self.v = _dense(c, c), _dense(c, c), _dense(c, c)
        self.proj_out = _dense(c, c, zero=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, height, width = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # [B, HW, C]
        q, k, v = self.q(h), self.k(h), self.v(h)
        w = torch.softmax(q @ k.transpose(1, 2) * c ** -0.5, dim=-1)
        h = self.proj_out(w @ v)
        return x + h.transpose(1, 2).reshape(b, c, height, width)


class UNet(nn.Module):
    def __init__(self, *, in_ch: int, ch: int, ch_mult, num_res_blocks: int, attn_resolutions,
                 dropout: float, num_groups: int, resolution: int):
        super().__init__()
        self.ch, self.num_levels, self.num_res_blocks = ch, len(ch_mult), num_res_blocks
        self.temb_dense0, self.temb_dense1 = _dense(ch, 4 * ch), _dense(4 * ch, 4 * ch)
        blk = lambda a, b: ResnetBlock(a, b, 4 * ch, dropout, num_groups)
        self.conv_in = _conv(in_ch, ch, 3)
        self.down = nn.ModuleList()
        chans, c, res = [ch], ch, resolution
        for i, mult in enumerate(ch_mult):
            level = nn.Module()
            level.blocks, level.attns = nn.ModuleList(), nn.ModuleList()
            for _ in range(num_res_blocks):
                level.blocks.append(blk(c, ch * mult))
                c = ch * mult
                level.attns.append(AttnBlock(c, num_groups) if res in attn_resolutions
                                   else nn.Identity())
                chans.append(c)
            if i != len(ch_mult) - 1:
                level.downsample = _conv(c, c, 3, stride=2)
                chans.append(c)
                res //= 2
            self.down.append(level)
        self.mid_block_1, self.mid_attn_1, self.mid_block_2 = (
            blk(c, c), AttnBlock(c, num_groups), blk(c, c))
        self.up = nn.ModuleList()
        for i in reversed(range(len(ch_mult))):
            level = nn.Module()
            level.blocks, level.attns = nn.ModuleList(), nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                level.blocks.append(blk(c + chans.pop(), ch * ch_mult[i]))
                c = ch * ch_mult[i]
                level.attns.append(AttnBlock(c, num_groups) if res in attn_resolutions
                                   else nn.Identity())
            if i != 0:
                level.upsample = _conv(c, c, 3)
                res *= 2
            self.up.insert(0, level)
        assert not chans
        self.norm_out = nn.GroupNorm(num_groups, c, eps=1e-6)
        self.conv_out = _conv(c, in_ch, 3, zero=True)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        temb = self.temb_dense1(F.silu(self.temb_dense0(timestep_embedding(t, self.ch))))
        hs = [self.conv_in(x)]
        for i, level in enumerate(self.down):
            for block, attn in zip(level.blocks, level.attns, strict=True):
                hs.append(attn(block(hs[-1], temb)))
            if i != self.num_levels - 1:
                hs.append(level.downsample(F.pad(hs[-1], (0, 1, 0, 1))))  # TF "SAME", stride 2
        h = self.mid_block_2(self.mid_attn_1(self.mid_block_1(hs[-1], temb)), temb)
        for i in reversed(range(self.num_levels)):
            level = self.up[i]
            for block, attn in zip(level.blocks, level.attns, strict=True):
                h = attn(block(torch.cat([h, hs.pop()], dim=1), temb))
            if i != 0:
                h = level.upsample(F.interpolate(h, scale_factor=2, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


def make_model(config) -> UNet:
    m = config.model
    if m.dtype != "float32":
        raise NotImplementedError("the peer runs in float32.")
    return UNet(in_ch=config.data.image_shape[-1], ch=m.ch, ch_mult=tuple(m.ch_mult),
                num_res_blocks=m.num_res_blocks, attn_resolutions=tuple(m.attn_resolutions),
                dropout=m.dropout, num_groups=m.num_groups, resolution=config.data.image_size)


def make_peer(config, batch_size: int) -> Peer:
    d = config.diffusion
    if d.schedule != "linear" or config.data.random_flip:
        raise NotImplementedError("the peer mirrors the linear schedule without flips.")
    model = make_model(config)
    model.train()
    betas = torch.linspace(d.beta_start, d.beta_end, d.num_timesteps, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - betas, 0)
    sqrt_ab, sqrt_1m_ab = alpha_bar.sqrt().float(), (1 - alpha_bar).sqrt().float()
    opt = config.optimizer
    params = list(model.parameters())
    adam = torch.optim.Adam(params, lr=opt.learning_rate, betas=(opt.b1, opt.b2), eps=1e-8)
    warmup = opt.warmup_steps
    sched = torch.optim.lr_scheduler.LambdaLR(
        adam, lambda s: min(1.0, s / warmup) if warmup > 0 else 1.0)
    ema = [p.detach().clone() for p in params]
    size, c = config.data.image_size, config.data.image_shape[-1]
    x0 = torch.rand(batch_size, c, size, size, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def step() -> None:
        t = torch.randint(0, d.num_timesteps, (batch_size,))
        noise = torch.randn_like(x0)
        x_t = sqrt_ab[t, None, None, None] * x0 + sqrt_1m_ab[t, None, None, None] * noise
        adam.zero_grad(set_to_none=True)
        loss = ((model(x_t, t) - noise) ** 2).mean()
        loss.backward()
        if opt.grad_clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, opt.grad_clip_norm)
        adam.step()
        sched.step()
        if opt.ema_decay > 0:
            with torch.no_grad():
                torch._foreach_lerp_(ema, [p.detach() for p in params], 1.0 - opt.ema_decay)

    return Peer(step=step, models={"unet": model}, batch_size=batch_size)
