"""DDPM on CIFAR-10 with the paper's UNet (Ho et al. 2020, 35.7M parameters): for accelerators.

Command:
  python -m experiments.main --config experiments/configs/ddpm_cifar10.py
      --workdir runs/ddpm_cifar10
Needs CIFAR-10 prepared in the TFDS data_dir (`tfds build cifar10 --data_dir=...`, or
--config.data.download=True when online). The paper trains 800k steps at batch 128 on a TPU v3-8;
`python -m benchmarks.steps --models ddpm_cifar10` times this config's step (docs/benchmarks.md).
"""

from experiments.configs import ddpm_fmnist


def get_config():
    c = ddpm_fmnist.get_config()
    c.unlock()
    c.data.name = "cifar10"
    c.data.resize = "crop"  # CIFAR-10 is 32×32 RGB as stored: read as is
    c.data.random_flip = True  # as in the paper
    c.model.update(dict(ch=128, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
                        dropout=0.1, num_groups=32, dtype="bfloat16"))
    c.optimizer.learning_rate = 2e-4
    c.optimizer.warmup_steps = 5000
    c.optimizer.ema_decay = 0.9999
    c.train.batch_size = 128
    c.train.num_steps = 800_000
    c.train.log_every = 100
    c.train.checkpoint_every = 10_000
    c.train.eval_every = 50_000
    c.sampling.batch_size = 256
    c.eval.bpd_max_examples = 1000
    c.eval.bpd_timesteps = 0
    c.eval.num_images = 64
    c.lock()
    return c
