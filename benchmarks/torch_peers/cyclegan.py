"""CycleGAN's ResNet generator and PatchGAN (cyclegan_fmnist sizes) and jaxgen's step.

Mirrors :mod:`jaxgen.models.cyclegan` and :func:`jaxgen.families.cyclegan.make_cyclegan_step`
(the layers of junyanz/pytorch-CycleGAN-and-pix2pix's ``ResnetGenerator`` and
``NLayerDiscriminator``: instance norm without affine parameters, reflection padding, biases,
N(0, 0.02²) weights). One step:

1. generators: G(x), F(y); least-squares adversarial terms through D_Y and D_X (their
   parameters frozen: jaxgen differentiates with respect to G and F only); cycle F(G(x)),
   G(F(y)) and identity F(x), G(y) L1 terms, weights λ = 10 and 0.5·λ; backward; one Adam
   over G and F;
2. history pools of 50 images per domain (the reference's ``ImagePool``: fill, then swap with
   probability ½);
3. discriminators: ½[(D(real) − 1)² + D(pooled fake)²] for D_X and D_Y; backward; one Adam over
   both. Learning rate constant, then linearly to zero (``LambdaLR``), as configured.
"""

from __future__ import annotations

import random

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.torch_peers import Peer


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
            nn.init.zeros_(m.bias)


def _norm(h: torch.Tensor) -> torch.Tensor:
    return F.instance_norm(h, eps=1e-5)


class ResnetBlock(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.conv_0 = nn.Conv2d(features, features, 3)
        self.conv_1 = nn.Conv2d(features, features, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(_norm(self.conv_0(F.pad(x, (1, 1, 1, 1), mode="reflect"))))
        return x + _norm(self.conv_1(F.pad(h, (1, 1, 1, 1), mode="reflect")))


class ResnetGenerator(nn.Module):
    def __init__(self, channels: int, num_blocks: int, features: int, out_channels: int):
        super().__init__()
        f = features
        self.stem = nn.Conv2d(channels, f, 7)
        self.down = nn.ModuleList([nn.Conv2d(f, 2 * f, 3, 2, 1), nn.Conv2d(2 * f, 4 * f, 3, 2, 1)])
        self.blocks = nn.Sequential(*[ResnetBlock(4 * f) for _ in range(num_blocks)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(4 * f, 2 * f, 3, 2, 1, output_padding=1),
                                 nn.ConvTranspose2d(2 * f, f, 3, 2, 1, output_padding=1)])
        self.head = nn.Conv2d(f, out_channels, 7)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(_norm(self.stem(F.pad(x, (3, 3, 3, 3), mode="reflect"))))
        for conv in self.down:
            h = F.relu(_norm(conv(h)))
        h = self.blocks(h)
        for conv in self.up:
            h = F.relu(_norm(conv(h)))
        return torch.tanh(self.head(F.pad(h, (3, 3, 3, 3), mode="reflect")))


class PatchDiscriminator(nn.Module):
    def __init__(self, channels: int, features: int, num_layers: int):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(channels, features, 4, 2, 1)])
        c = features
        for n in range(1, num_layers + 1):
            stride = 2 if n < num_layers else 1
            width = features * min(2**n, 8)
            self.convs.append(nn.Conv2d(c, width, 4, stride, 1))
            c = width
        self.head = nn.Conv2d(c, 1, 4, 1, 1)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.leaky_relu(self.convs[0](x), 0.2)
        for conv in self.convs[1:]:
            h = F.leaky_relu(_norm(conv(h)), 0.2)
        return self.head(h)


class ImagePool:
    """The reference's history of generated images (``util/image_pool.py``)."""

    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif self.rng.random() < 0.5:
                i = self.rng.randrange(self.size)
                out.append(self.images[i].clone())
                self.images[i] = image
            else:
                out.append(image)
        return torch.stack(out)


def make_models(config) -> tuple[ResnetGenerator, PatchDiscriminator]:
    m, c = config.model, config.data.channels
    return (ResnetGenerator(c, m.num_blocks, m.generator_features, c),
            PatchDiscriminator(c, m.discriminator_features, m.discriminator_layers))


def make_peer(config, batch_size: int, *, num_steps: int = 1000) -> Peer:
    nets = {}
    for name in ("G", "F"):
        nets[name] = make_models(config)[0]
    for name in ("D_X", "D_Y"):
        nets[name] = make_models(config)[1]
    opt = config.optimizer
    adam = dict(lr=opt.learning_rate, betas=(opt.b1, opt.b2), eps=1e-8)
    g_params = [p for n in ("G", "F") for p in nets[n].parameters()]
    d_params = [p for n in ("D_X", "D_Y") for p in nets[n].parameters()]
    g_opt = torch.optim.Adam(g_params, **adam)
    d_opt = torch.optim.Adam(d_params, **adam)
    decay_steps = max(1, round(opt.decay_fraction * num_steps))
    decay_start = num_steps - decay_steps

    def factor(step: int) -> float:  # constant, then linearly to zero
        return 1.0 if step < decay_start else max(0.0, 1.0 - (step - decay_start) / decay_steps)

    schedulers = [torch.optim.lr_scheduler.LambdaLR(o, factor) for o in (g_opt, d_opt)]
    size, c = config.data.crop_size, config.data.channels
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(batch_size, c, size, size, generator=gen) * 2 - 1
    y = torch.rand(batch_size, c, size, size, generator=gen) * 2 - 1
    pools = {d: ImagePool(config.loss.pool_size, seed) for seed, d in enumerate("xy")}
    lam = config.loss.cycle_weight
    lam_id = config.loss.identity_weight * lam
    G, F_, D_X, D_Y = nets["G"], nets["F"], nets["D_X"], nets["D_Y"]

    def step() -> None:
        g_opt.zero_grad(set_to_none=True)
        for d in (D_X, D_Y):
            d.requires_grad_(False)
        fake_y, fake_x = G(x), F_(y)
        adv = ((D_Y(fake_y) - 1) ** 2).mean() + ((D_X(fake_x) - 1) ** 2).mean()
        cyc = (F_(fake_y) - x).abs().mean() + (G(fake_x) - y).abs().mean()
        loss = adv + lam * cyc
        if lam_id > 0:
            loss = loss + lam_id * ((F_(x) - x).abs().mean() + (G(y) - y).abs().mean())
        loss.backward()
        g_opt.step()
        for d in (D_X, D_Y):
            d.requires_grad_(True)

        pooled_x, pooled_y = pools["x"].query(fake_x), pools["y"].query(fake_y)
        d_opt.zero_grad(set_to_none=True)
        d_y = 0.5 * (((D_Y(y) - 1) ** 2).mean() + (D_Y(pooled_y) ** 2).mean())
        d_x = 0.5 * (((D_X(x) - 1) ** 2).mean() + (D_X(pooled_x) ** 2).mean())
        (d_x + d_y).backward()
        d_opt.step()
        for s in schedulers:
            s.step()

    return Peer(step=step, models=nets, batch_size=batch_size)
