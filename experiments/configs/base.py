"""Settings shared by every experiment; each config starts here and overrides only deltas."""

import ml_collections
from ml_collections import config_dict


def get_base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.family = ""  # jaxgen.families.names(): "autoencoder", "diffusion", "gan", "cyclegan"
    c.seed = 0

    c.data = ml_collections.ConfigDict()
    c.data.source = "tfds"  # "tfds", "folder" (images) or "synthetic" (toy blobs: tests)
    c.data.name = "fashion_mnist"
    c.data.data_dir = config_dict.placeholder(str)  # TFDS data_dir; None: TFDS's default
    c.data.local_dir = "/usr/share/datasets/fashion-mnist"  # Debian's IDX files
    c.data.download = False  # allow TFDS's standard download (needs internet)
    c.data.num_shards = 0  # 0: one shard per process

    c.optimizer = ml_collections.ConfigDict()
    c.optimizer.learning_rate = 1e-3
    c.optimizer.b1 = 0.9
    c.optimizer.b2 = 0.999
    c.optimizer.grad_clip_norm = 0.0  # 0: no clipping
    c.optimizer.warmup_steps = 0  # linear warmup from 0
    c.optimizer.schedule = "constant"  # or "linear_decay" (to 0 over the last decay_fraction)
    c.optimizer.decay_fraction = 0.5
    c.optimizer.ema_decay = 0.0  # > 0: keep an EMA of the parameters (used for evaluation)

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 128  # global, over all devices and processes
    c.train.num_epochs = 10
    c.train.num_steps = 0  # > 0 overrides num_epochs
    c.train.parallel = "shard_map"  # or "pmap"
    c.train.log_every = 100
    c.train.eval_every = 0  # steps; 0: at the end only
    c.train.checkpoint_every = 1000
    c.train.keep_checkpoints = 3
    c.train.async_checkpoints = True  # write checkpoint files while training goes on
    c.train.progress = True

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 500  # global
    c.eval.max_examples = 0  # global, per eval pass and domain; 0: the whole test split
    c.eval.num_images = 64  # samples / reconstructions in the PNG grids
    return c


def get_image_config() -> ml_collections.ConfigDict:
    """The base config with the data settings of single-domain image datasets."""
    c = get_base_config()
    c.data.path = ""  # source="folder": DIR of images (class subfolders give labels)
    c.data.image_key = ""  # TFDS image feature ("": found from the dataset's features)
    c.data.label_key = ""  # TFDS label feature ("": found; "none": no labels)
    c.data.image_size = 0  # square side of the model's images (0: as stored)
    c.data.resize = "crop"  # "crop": shorter side to image_size, centre crop; "pad": zero-pad
    c.data.channels = 0  # 1 (grey) or 3 (RGB); 0: as stored
    c.data.test_fraction = 0.1  # source="folder" without DIR/train and DIR/test
    c.data.max_bad_fraction = 0.01  # unreadable records are skipped; stop above this share
    c.data.workers = 0  # reader processes (0: threads of the trainer)
    c.data.threads = 2  # reader threads (per process)
    c.data.synthetic_examples = 512  # per split, source="synthetic" only
    return c


def make_tiny(c: ml_collections.ConfigDict) -> None:
    """Shrink an (unlocked) config to a few steps on synthetic data (for tests)."""
    c.data.source = "synthetic"
    c.data.synthetic_examples = 48
    if "image_size" in c.data:  # single-domain images: 16×16 grey toy blobs
        c.data.image_size = 16
        c.data.channels = 1
    c.train.update(dict(num_steps=3, batch_size=8, log_every=1, checkpoint_every=2,
                        eval_every=0, progress=False))
    c.eval.update(dict(batch_size=8, max_examples=16, num_images=4))
