"""What reusing one batch of fakes per GAN step would save, in jaxgen and in PyTorch (CPU).

jaxgen's DCGAN step (:func:`jaxgen.families.gan.make_dcgan_step`) generates twice per step: a
batch without gradient for the discriminator's update, then a second batch from new latents
for the generator's. The PyTorch DCGAN example generates once: D is updated on
``fake.detach()``, then G on D(fake) scored by the updated D, backpropagating through the same
forward pass. This script times both orders, alternating windows A B A B … (A reuses the
fakes, B generates twice; the ratio is A's images/s over B's):

* jaxgen: a reuse-the-fakes step written here (A) against the registered config's compiled
  step from ``benchmarks.steps.build`` (B). A keeps one generator forward for ``jax.vjp``,
  updates D on its stop-gradient output, then pulls the gradient of the generator loss through
  the updated D and back through the saved forward pass;
* PyTorch: :func:`benchmarks.torch_peers.dcgan.make_peer` with ``reuse_fakes`` True (A) and
  False (B).

Usage (from the repository root)::

    python -m benchmarks.gan_fake_reuse --pairs 5
"""

from __future__ import annotations

import argparse
import statistics

import jax
import optax

from benchmarks import cpu_vs_pytorch
from benchmarks import steps as steps_benchmark
from jaxgen.families.gan import GAN, LOGIT_LOSSES, latents
from jaxgen.math import adversarial
from jaxgen.training import (
    AXIS,
    LossOutput,
    gradient_update,
    split_named,
    with_step_key,
    xla_flags,
)
from jaxgen.training.step import learning_rate


def make_reuse_body(family: GAN):
    """The family's step with one batch of fakes per step (``loss.d_steps`` = 1, no R1), with
    the same metrics as :func:`jaxgen.families.gan.make_dcgan_step`."""
    config = family.config
    if config.loss.d_steps != 1 or config.loss.r1_weight > 0:
        raise NotImplementedError("one discriminator step, no R1 penalty")
    generator, discriminator = family.generator, family.discriminator
    d_loss_fn, g_loss_fn = adversarial.get_gan_losses(config.loss.kind)
    score = jax.nn.sigmoid if config.loss.kind in LOGIT_LOSSES else (lambda s: s)

    def train_step(state, batch, key):
        real = batch["image"]
        z = latents(split_named(key, ("z",))["z"], real.shape[0], generator.latent_dim)
        g, d = state.generator, state.discriminator

        def generate(params):
            return generator.apply({"params": params, **g.model_state}, z, train=True,
                                   mutable=["batch_stats"])

        fake, pull_back, g_updates = jax.vjp(generate, g.params, has_aux=True)

        def discriminate(params, model_state, x):
            return discriminator.apply({"params": params, **model_state}, x, train=True,
                                       mutable=["batch_stats"])

        def d_loss(params):
            real_logits, stats = discriminate(params, d.model_state, real)
            fake_logits, stats = discriminate(params, stats, jax.lax.stop_gradient(fake))
            loss = d_loss_fn(real_logits, fake_logits)
            metrics = {"d_loss": loss.mean(), "d_real": score(real_logits).mean(),
                       "d_fake": score(fake_logits).mean()}
            return LossOutput(loss=loss.mean(), metrics=metrics, model_state=stats)

        d, d_metrics, _ = gradient_update(d, d_loss, name="d")

        def g_loss_of_fake(x):
            return g_loss_fn(discriminate(d.params, d.model_state, x)[0]).mean()

        g_loss, fake_grad = jax.value_and_grad(g_loss_of_fake)(fake)
        (g_grads,) = pull_back(fake_grad)
        g_grads = jax.lax.pmean(g_grads, AXIS)
        g = g.apply_gradients(grads=g_grads).replace(model_state=g_updates)
        g_metrics = {"g_loss": jax.lax.pmean(g_loss, AXIS),
                     "g_grad_norm": optax.tree.norm(g_grads)}
        lr = learning_rate(g.opt_state)
        if lr is not None:
            g_metrics["g_learning_rate"] = lr
        new = state.replace(step=state.step + 1, generator=g, discriminator=d)
        return new, {**d_metrics, **g_metrics}

    return train_step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--window_s", type=float, default=4.0)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--quiet_cores", type=float, default=0.25)
    parser.add_argument("--max_wait_s", type=float, default=300.0)
    args = parser.parse_args(argv)
    xla_flags.set_cpu_flags()
    name, batch_size = "dcgan_fmnist", cpu_vs_pytorch.MODELS["dcgan_fmnist"].batch_size

    built = steps_benchmark.build(name, batch_size, {})
    twice = cpu_vs_pytorch._carry(built.compiled, built.state, built.batch, built.key)
    reuse_step = built.parallel.compile(with_step_key(make_reuse_body(built.runner.family)))
    state = built.parallel.replicate(built.runner.initial_state(num_steps=1000))
    reuse = cpu_vs_pytorch._carry(reuse_step, state, built.batch, built.key)
    print(f"{name} batch {batch_size}, jaxgen: reuse the fakes (A) vs generate twice (B)")
    jax_row = cpu_vs_pytorch.compare(name, reuse, twice, batch_size, args,
                                     labels=("reuse", "twice"))
    print(f"  jaxgen: reuse/twice images/s median {jax_row['median_ratio']:.3f}")

    print(f"{name} batch {batch_size}, PyTorch: reuse the fakes (A) vs generate twice (B)")
    torch_twice = cpu_vs_pytorch.torch_peer(name, batch_size)
    torch_reuse = cpu_vs_pytorch.torch_peer(name, batch_size, reuse_fakes=True)
    torch_row = cpu_vs_pytorch.compare(
        name, cpu_vs_pytorch._torch_runner(torch_reuse),
        cpu_vs_pytorch._torch_runner(torch_twice), batch_size, args, labels=("reuse", "twice"))
    print(f"  PyTorch: reuse/twice images/s median {torch_row['median_ratio']:.3f}")
    for label, row in (("jaxgen", jax_row), ("pytorch", torch_row)):
        saved = [1 - 1 / r for r in row["ratios"]]
        print(f"{label}: step time saved by reusing the fakes, per pair "
              f"{' '.join(f'{100 * s:.0f}%' for s in saved)}; median "
              f"{100 * statistics.median(saved):.0f}%")
    built.runner.close()


if __name__ == "__main__":
    main()
