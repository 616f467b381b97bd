"""DCGAN at 64×64 RGB (Radford et al. 2016, the paper's widths) on a folder of your images.

Command:
  python -m experiments.main --config experiments/configs/dcgan_folder64.py
      --workdir runs/dcgan_folder64 --config.data.path=DIR
DIR holds images (PNG, JPEG, WebP, BMP; nested; any size or mode): each is resized so its
shorter side is 64 and centre-cropped, and converted to RGB. Class subfolders give labels
(unused by the GAN); DIR/train and DIR/test are the splits when both exist, else 10% of the
files are held out (data.test_fraction). Try it on generated blobs first:
  python -m jaxgen.data.generate folder /tmp/blobs64 --num_images 2000 --size 64
Reading uses data.workers processes (0: threads of the trainer); bad files are skipped and
counted (data.max_bad_fraction).
"""

from experiments.configs import dcgan_fmnist


def get_config():
    c = dcgan_fmnist.get_config()
    c.unlock()
    c.data.source = "folder"
    c.data.path = ""  # --config.data.path=DIR (required)
    c.data.image_size = 64
    c.data.resize = "crop"
    c.data.channels = 3
    c.model.update(dict(generator_features=64, discriminator_features=64))
    c.train.batch_size = 128  # the paper's
    c.train.num_epochs = 25
    c.train.num_steps = 0  # num_epochs sets the budget
    c.train.eval_every = 1000
    c.train.checkpoint_every = 1000
    c.lock()
    return c
