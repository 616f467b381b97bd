"""DCGAN generator and discriminator (dcgan_fmnist widths) and jaxgen's two-player step.

Mirrors :mod:`jaxgen.models.dcgan` and :func:`jaxgen.families.gan.make_dcgan_step` with
``loss.d_steps = 1`` and the non-saturating loss. One step:

1. G generates a batch from fresh latents in train mode (batch statistics, running averages
   updated), without gradient;
2. D scores the real batch and those fakes in two separate train-mode passes (the second
   normalised by its own batch statistics); loss softplus(−D(x)) + softplus(D(G(z))); backward;
   Adam on D;
3. G generates a *second* batch from new latents (jaxgen generates twice per step), the updated
   D scores it in train mode without updating its running averages; loss softplus(−D(G(z)));
   backward through D (input gradients only: D's parameters are frozen for this pass, as jaxgen
   differentiates with respect to G's parameters only) and G; Adam on G.

Weights are drawn like jaxgen's (N(0, 0.02²) kernels, BatchNorm γ ~ N(1, 0.02²)). PyTorch's
``ConvTranspose2d(padding=p)`` is jaxgen's ``ConvTranspose`` with padding ``k − 1 − p`` of the
dilated input and the kernel flipped; parameter counts are equal.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.torch_peers import Peer


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.normal_(m.weight, 0.0, 0.02)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _num_stages(image_size: int) -> int:
    return image_size.bit_length() - 3


class Generator(nn.Module):
    def __init__(self, latent_dim: int, features: int, channels: int, image_size: int):
        super().__init__()
        stages = _num_stages(image_size)
        width = features * 2 ** (stages - 1)
        layers = [nn.ConvTranspose2d(latent_dim, width, 4, 1, 0, bias=False),
                  nn.BatchNorm2d(width), nn.ReLU(True)]
        for _ in range(stages - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.latent_dim = latent_dim
        _init(self)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z.view(z.shape[0], self.latent_dim, 1, 1))


class Discriminator(nn.Module):
    def __init__(self, features: int, channels: int, image_size: int):
        super().__init__()
        stages = _num_stages(image_size)
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        c = channels
        for i in range(stages):
            self.convs.append(nn.Conv2d(c, features * 2**i, 4, 2, 1, bias=False))
            if i > 0:
                self.norms.append(nn.BatchNorm2d(features * 2**i))
            c = features * 2**i
        self.head = nn.Conv2d(c, 1, 4, 1, 0, bias=False)
        _init(self)

    def forward(self, x: torch.Tensor, update_stats: bool = True) -> torch.Tensor:
        h = x
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i > 0:
                bn = self.norms[i - 1]
                # Train-mode batch statistics; running averages only when asked (jaxgen's
                # generator pass discards D's updated statistics).
                h = F.batch_norm(h, bn.running_mean if update_stats else None,
                                 bn.running_var if update_stats else None, bn.weight, bn.bias,
                                 True, bn.momentum, bn.eps)
            h = F.leaky_relu(h, 0.2)
        return self.head(h).view(-1)


def make_models(config) -> tuple[Generator, Discriminator]:
    m, size, c = config.model, config.data.image_size, config.data.image_shape[-1]
    return (Generator(m.latent_dim, m.generator_features, c, size),
            Discriminator(m.discriminator_features, c, size))


def make_peer(config, batch_size: int, *, reuse_fakes: bool = False) -> Peer:
    """jaxgen's GAN step (``reuse_fakes=False``), or the PyTorch DCGAN example's order
    (``reuse_fakes=True``: one batch of fakes, D on ``fake.detach()``, then G on D(fake) with
    the updated D, so G's forward runs once per step)."""
    if config.loss.d_steps != 1 or config.loss.kind != "non_saturating":
        raise NotImplementedError("the peer mirrors d_steps=1 with the non-saturating loss.")
    if config.loss.r1_weight > 0:
        raise NotImplementedError("the peer has no R1 penalty.")
    g, d = make_models(config)
    g.train()
    d.train()
    opt = config.optimizer
    adam = dict(lr=opt.learning_rate, betas=(opt.b1, opt.b2), eps=1e-8)
    g_opt = torch.optim.Adam(g.parameters(), **adam)
    d_opt = torch.optim.Adam(d.parameters(), **adam)
    size, c = config.data.image_size, config.data.image_shape[-1]
    gen = torch.Generator().manual_seed(0)
    real = torch.rand(batch_size, c, size, size, generator=gen) * 2 - 1
    latent = config.model.latent_dim

    def step() -> None:
        z = torch.randn(batch_size, latent)
        if reuse_fakes:
            fake = g(z)
            fake_for_d = fake.detach()
        else:
            with torch.no_grad():
                fake_for_d = g(z)
        d_opt.zero_grad(set_to_none=True)
        d_loss = (F.softplus(-d(real)) + F.softplus(d(fake_for_d))).mean()
        d_loss.backward()
        d_opt.step()

        if not reuse_fakes:
            fake = g(torch.randn(batch_size, latent))
        g_opt.zero_grad(set_to_none=True)
        d.requires_grad_(False)
        g_loss = F.softplus(-d(fake, update_stats=False)).mean()
        g_loss.backward()
        d.requires_grad_(True)
        g_opt.step()

    return Peer(step=step, models={"generator": g, "discriminator": d}, batch_size=batch_size)
