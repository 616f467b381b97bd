"""The Fashion-MNIST feature classifier of the evaluation suite (CNN, BatchNorm + dropout).

Command:
  python -m experiments.main --config experiments/configs/classifier_fmnist.py
      --workdir runs/classifier_fmnist
Budget:   10 epochs, batch 128 (4,690 steps), Adam 2e-3 with 300 warmup steps, linearly
          decayed to 0 over the last 70%. The evaluation suite (jaxgen.evaluation.features,
          python -m experiments.results) loads this workdir.
Measured: test accuracy not yet measured (target ≥ 93%). Speed: 1.4 steps/s at nice 19 on a
          shared 2-core CPU (load ≈ 8), i.e. ≈ 55 min for the budget there; train accuracy
          (with dropout) 0.84 at step 300.
"""

from experiments.configs import base


def get_config():
    c = base.get_image_config()
    c.family = "classifier"
    c.model = dict(num_classes=10, widths=(32, 64), feature_dim=128, conv_dropout=0.25,
                   dense_dropout=0.5)

    c.optimizer.learning_rate = 2e-3
    c.optimizer.warmup_steps = 300
    c.optimizer.schedule = "linear_decay"
    c.optimizer.decay_fraction = 0.7

    c.train.batch_size = 128
    c.train.num_epochs = 10
    c.train.log_every = 100
    c.train.checkpoint_every = 1000
    c.eval.num_images = 0  # nothing to draw: a classifier neither samples nor reconstructs
    c.lock()
    return c
