"""CycleGAN demo, offline on the CPU: Fashion-MNIST sneakers (X) ↔ ankle boots (Y), 32×32.

Command:
  python -m experiments.main --config experiments/configs/cyclegan_fmnist.py
      --workdir runs/cyclegan_fmnist
Translate:  ... --workdir runs/cyclegan_fmnist --mode=translate --config.translate.direction=x2y
Two classes of Fashion-MNIST (disjoint sets of images, shuffled independently) are the unpaired
domains; the networks are the paper's at reduced width and depth.
Budget:   1,500 steps at batch 8, Adam 2e-4 (β₁ 0.5) for generators and discriminators
          (`optimizer`; the discriminators' own settings, if any, in `d_optimizer`), constant
          then linearly to 0 over the second half; 3 residual blocks, 16 base filters.
Measured (2026-11-24, 2-core CPU shared with other work): 482 s with 3 evaluations; test
          cycle L1 0.076 (X, sneakers) and 0.091 (Y, ankle boots) on 500 images each.
          docs/families/cyclegan.md.
"""

from ml_collections.config_dict import placeholder

from experiments.configs import base


def get_config():
    c = base.get_base_config()
    c.family = "cyclegan"
    # "fashion_mnist" (demo), "tfds" (cycle_gan/...), "folders", "synthetic" (toy blobs)
    c.data.source = "fashion_mnist"
    c.data.synthetic_examples = 64  # source="synthetic": per domain and split
    c.data.name = "cycle_gan/monet2photo"  # source="tfds"
    c.data.root = ""  # source="folders": a root with trainA/ trainB/ testA/ testB/
    c.data.swap_domains = False  # tfds: X = B (photos); folders: X = A/. True swaps them.
    c.data.class_x = 7  # source="fashion_mnist": sneakers
    c.data.class_y = 9  # ankle boots
    c.data.channels = 1
    c.data.load_size = 32  # stored side; 286 at 256 (then random 256 crops)
    c.data.crop_size = 32
    c.data.flip = True

    c.model = dict(num_blocks=3, generator_features=16, discriminator_features=16,
                   discriminator_layers=2,
                   dtype="float32")  # compute dtype; "bfloat16": mixed precision
    c.loss = dict(cycle_weight=10.0,  # λ
                  identity_weight=0.5,  # × λ; 0 disables the identity loss
                  pool_size=50)  # history of generated images per domain; 0 disables

    c.optimizer.learning_rate = 2e-4
    c.optimizer.b1 = 0.5
    c.optimizer.schedule = "linear_decay"
    c.optimizer.decay_fraction = 0.5  # constant for the first half, then linearly to 0
    # The discriminators' own settings; None keeps the `optimizer` value above (the generators').
    # E.g. --config.d_optimizer.learning_rate=1e-4 for slower discriminators.
    c.d_optimizer = dict(learning_rate=placeholder(float), b1=placeholder(float),
                         b2=placeholder(float), grad_clip_norm=placeholder(float),
                         warmup_steps=placeholder(int), schedule=placeholder(str),
                         decay_fraction=placeholder(float))

    c.train.batch_size = 8
    c.train.num_steps = 1500
    c.train.log_every = 50
    c.train.eval_every = 500
    c.train.checkpoint_every = 500

    c.eval.batch_size = 100
    c.eval.max_examples = 500  # global, per domain; 0: the whole test split
    c.eval.num_images = 24  # per grid: 8 rows of (x, G(x), F(G(x))), 8 of (y, F(y), G(F(y)))

    c.translate = dict(direction="x2y",  # "x2y" (G) or "y2x" (F)
                       input_dir="",  # a folder of images; empty: the source's test split
                       output_dir="",  # empty: <workdir>/translated_<direction>
                       batch_size=16,
                       overwrite=False)  # True: write into a non-empty output_dir
    c.lock()
    return c
