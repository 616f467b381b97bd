"""DDPM at 64×64 RGB on a folder of your images: a UNet with ch 64, (1, 2, 2, 2), attention at
16×16 (Ho et al. 2020's CelebA-HQ/LSUN layout at a quarter of the width), for accelerators.

Command:
  python -m experiments.main --config experiments/configs/ddpm_folder64.py
      --workdir runs/ddpm_folder64 --config.data.path=DIR
DIR holds images (PNG, JPEG, WebP, BMP; nested; any size or mode): each is resized so its
shorter side is 64 and centre-cropped, and converted to RGB; random horizontal flips as in the
paper. DIR/train and DIR/test are the splits when both exist, else 10% of the files are held
out (data.test_fraction). Try it on generated blobs first:
  python -m jaxgen.data.generate folder /tmp/blobs64 --num_images 2000 --size 64
"""

from experiments.configs import ddpm_fmnist


def get_config():
    c = ddpm_fmnist.get_config()
    c.unlock()
    c.data.source = "folder"
    c.data.path = ""  # --config.data.path=DIR (required)
    c.data.image_size = 64
    c.data.resize = "crop"
    c.data.channels = 3
    c.data.random_flip = True
    c.model.update(dict(ch=64, ch_mult=(1, 2, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
                        dropout=0.1, num_groups=32, dtype="bfloat16"))
    c.optimizer.learning_rate = 2e-4
    c.optimizer.warmup_steps = 5000
    c.optimizer.ema_decay = 0.9999
    c.train.batch_size = 64
    c.train.num_steps = 500_000
    c.train.log_every = 100
    c.train.checkpoint_every = 5000
    c.train.eval_every = 50_000
    c.sampling.batch_size = 64
    c.eval.bpd_max_examples = 1000
    c.eval.num_images = 64
    c.lock()
    return c
