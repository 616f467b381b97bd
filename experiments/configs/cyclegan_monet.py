"""CycleGAN photo (X) ↔ Monet (Y) at 256×256, as in Zhu et al. 2017: for accelerators.

Command:
  python -m experiments.main --config experiments/configs/cyclegan_monet.py
      --workdir runs/cyclegan_monet
Needs TFDS `cycle_gan/monet2photo` prepared in the data_dir (`tfds build cycle_gan/monet2photo
--data_dir=...`), or any trainA/ trainB/ testA/ testB/ folders with
--config.data.source=folders --config.data.root=DIR. Paper budget: 100 epochs at 2e-4, then 100
epochs decaying linearly to 0, batch 1. `python -m benchmarks.steps --models cyclegan_256` times
the step (docs/benchmarks.md).
"""

from experiments.configs import cyclegan_fmnist


def get_config():
    c = cyclegan_fmnist.get_config()
    c.unlock()
    c.data.source = "tfds"
    c.data.channels = 3
    c.data.load_size = 286
    c.data.crop_size = 256
    c.model.update(dict(num_blocks=9, generator_features=64, discriminator_features=64,
                        discriminator_layers=3))
    c.train.batch_size = 1
    c.train.num_steps = 0
    c.train.num_epochs = 200  # an epoch = max(|X|, |Y|) / batch steps
    c.train.log_every = 100
    c.train.eval_every = 0
    c.train.checkpoint_every = 5000
    c.eval.batch_size = 8
    c.eval.max_examples = 0
    c.eval.num_images = 4
    c.lock()
    return c
