"""The conv VAE (vae_conv) and the MLP VAE (vae_mlp) with jaxgen's autoencoder step.

Conv: mirrors :func:`jaxgen.models.autoencoders.make_autoencoder` with
``architecture="conv"``: 4×4 stride-2 convolutions (TensorFlow "SAME" = padding 1 here) with
ReLU, a linear layer to 2·latent numbers (mean, log-variance); decoder: a linear layer to a
7×7 map, ReLU, 4×4 stride-2 transposed convolutions (padding 1), all with biases. Step
(:meth:`jaxgen.families.autoencoder.Autoencoder.train_body`): z = μ + σ ε, Bernoulli
log-likelihood from logits (binary cross-entropy summed over pixels) + KL to N(0, I), batch
mean, backward, Adam.

MLP: the classic example's model and loss from ``benchmarks/pytorch_reference_vae.py``
(784-400-20, sigmoid + BCE summed over the batch), its training loop's step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import pytorch_reference_vae
from benchmarks.torch_peers import Peer


class ConvVAE(nn.Module):
    def __init__(self, image_shape, channels, latent_dim: int):
        super().__init__()
        h, w, c = image_shape
        self.latent_dim = latent_dim
        layers, c_in = [], c
        for ch in channels:
            layers += [nn.Conv2d(c_in, ch, 4, 2, 1), nn.ReLU()]
            c_in = ch
        self.encoder = nn.Sequential(*layers, nn.Flatten(),
                                     nn.Linear(c_in * (h // 4) * (w // 4), 2 * latent_dim))
        rev = tuple(reversed(channels))
        factor = 2 ** len(rev)
        self.h0, self.w0, self.c0 = h // factor, w // factor, rev[0]
        self.fc = nn.Linear(latent_dim, self.h0 * self.w0 * rev[0])
        layers = []
        for a, b in zip(rev[:-1], rev[1:], strict=True):
            layers += [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.ReLU()]
        layers.append(nn.ConvTranspose2d(rev[-1], c, 4, 2, 1))
        self.decoder = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor):
        stats = self.encoder(x)
        mean, logvar = stats[:, : self.latent_dim], stats[:, self.latent_dim:]
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        h = F.relu(self.fc(z)).view(-1, self.c0, self.h0, self.w0)
        return self.decoder(h), mean, logvar


def make_conv_peer(config, batch_size: int) -> Peer:
    m = config.model
    if m.architecture != "conv" or not m.variational or config.loss.reconstruction != "bce":
        raise NotImplementedError("the conv peer mirrors the BCE conv VAE.")
    model = ConvVAE(tuple(config.data.image_shape), tuple(m.channels), m.latent_dim)
    opt = config.optimizer
    adam = torch.optim.Adam(model.parameters(), lr=opt.learning_rate, betas=(opt.b1, opt.b2),
                            eps=1e-8)
    h, w, c = config.data.image_shape
    x = torch.randint(0, 256, (batch_size, c, h, w),
                      generator=torch.Generator().manual_seed(0)).float() / 255
    beta = config.loss.beta

    def step() -> None:
        adam.zero_grad(set_to_none=True)
        logits, mean, logvar = model(x)
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
        kl = -0.5 * (1 + logvar - mean**2 - logvar.exp()).sum(-1)
        (rec + beta * kl).mean().backward()
        adam.step()

    return Peer(step=step, models={"vae": model}, batch_size=batch_size)


def make_mlp_peer(config, batch_size: int) -> Peer:
    if config.model.architecture != "mlp" or tuple(config.model.hidden) != (400,):
        raise NotImplementedError("the MLP peer is the classic 784-400-20 example.")
    model = pytorch_reference_vae.VAE()
    opt = config.optimizer
    adam = torch.optim.Adam(model.parameters(), lr=opt.learning_rate, betas=(opt.b1, opt.b2),
                            eps=1e-8)
    x = torch.randint(0, 256, (batch_size, 784),
                      generator=torch.Generator().manual_seed(0)).float() / 255

    def step() -> None:
        adam.zero_grad(set_to_none=True)
        recon, mu, logvar = model(x)
        pytorch_reference_vae.loss_function(recon, x, mu, logvar).backward()
        adam.step()

    return Peer(step=step, models={"vae": model}, batch_size=batch_size)
