"""What reusing one batch of fakes per GAN step would save, in jaxgen and in PyTorch (CPU).

jaxgen's DCGAN step (``experiments/gan.py``) generates twice per step: a batch without
gradient for the discriminator's update, then a second batch from new latents for the
generator's. The PyTorch DCGAN example generates once: D is updated on ``fake.detach()``,
then G on D(fake) scored by the updated D, backpropagating through the same forward pass.
This script times both orders, alternating windows A B A B …:

* jaxgen: the experiment's own compiled step (A) against a reuse-the-fakes step written here
  (B): one generator forward kept for ``jax.vjp``, the D update on its stop-gradient output,
  then the G update pulls the gradient of the non-saturating loss through the updated D and
  back through the saved forward pass;
* PyTorch: :func:`benchmarks.torch_peers.dcgan.make_peer` with ``reuse_fakes`` False (A) and
  True (B).

Usage (from the repository root)::

    python -m benchmarks.gan_fake_reuse --pairs 5
"""

from __future__ import annotations

import argparse
import statistics

import jax

from benchmarks import cpu_vs_pytorch, generative_steps
from jaxgen.math import adversarial
from jaxgen.training import (
    gradient_update,
    per_example_keys,
    split_named,
    with_step_key,
    xla_flags,
)


def make_reuse_body(generator, discriminator, config):
    """The experiment's step with one batch of fakes per step (d_steps = 1)."""
    if config.train.d_steps != 1 or config.loss.r1_weight > 0:
        raise NotImplementedError("one discriminator step, no R1 penalty")
    d_loss_fn, g_loss_fn = adversarial.get_gan_losses(config.loss.kind)
    latent_dim = config.model.latent_dim

    def train_step(state, batch, key):
        real = batch["image"]
        b = real.shape[0]
        z = jax.vmap(lambda k: jax.random.normal(k, (latent_dim,)))(
            per_example_keys(split_named(key, ("z",))["z"], b))
        g, d = state.generator, state.discriminator

        def generate(params):
            fake, updates = generator.apply({"params": params, "batch_stats": g.batch_stats},
                                            z, train=True, mutable=["batch_stats"])
            return fake, updates["batch_stats"]

        fake, pull_back, g_stats = jax.vjp(generate, g.params, has_aux=True)

        def discriminate(params, stats, x):
            logits, updates = discriminator.apply({"params": params, "batch_stats": stats}, x,
                                                  train=True, mutable=["batch_stats"])
            return logits, updates["batch_stats"]

        def d_loss(params):
            real_logits, stats = discriminate(params, d.batch_stats, real)
            fake_logits, stats = discriminate(params, stats, jax.lax.stop_gradient(fake))
            loss = d_loss_fn(real_logits, fake_logits).mean()
            return loss, {"d_loss": loss, "batch_stats": stats}

        d, d_metrics, _ = gradient_update(d, d_loss)

        def g_loss_of_fake(x):
            return g_loss_fn(discriminate(d.params, d.batch_stats, x)[0]).mean()

        g_loss, fake_grad = jax.value_and_grad(g_loss_of_fake)(fake)
        (g_grads,) = pull_back(fake_grad)
        g_grads = jax.lax.pmean(g_grads, "data")
        g = g.apply_gradients(grads=g_grads).replace(batch_stats=g_stats)
        new = state.replace(step=state.step + 1, generator=g, discriminator=d)
        return new, {**d_metrics, "g_loss": jax.lax.pmean(g_loss, "data")}

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

    built = generative_steps.build(name, batch_size, [])
    twice = cpu_vs_pytorch._carry(built.compiled, built.state, built.batch, built.key)
    exp = built.exp
    reuse_step = built.run.parallel.compile(
        with_step_key(make_reuse_body(exp.generator, exp.discriminator, exp.config)))
    state = built.run.parallel.replicate(exp.initial_state)
    reuse = cpu_vs_pytorch._carry(reuse_step, state, built.batch, built.key)
    print(f"{name} batch {batch_size}, jaxgen: generate twice (A) vs reuse the fakes (B)")
    jax_row = cpu_vs_pytorch.compare(name, reuse, twice, batch_size, args,
                                     labels=("reuse", "twice"))
    print(f"  jaxgen: reuse/twice images/s median {jax_row['median_ratio']:.3f}")

    print(f"{name} batch {batch_size}, PyTorch: generate twice (A) vs reuse the fakes (B)")
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
    built.run.close()


if __name__ == "__main__":
    main()
