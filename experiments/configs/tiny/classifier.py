"""A tiny feature classifier on 16×16 synthetic images, for the family contract tests."""

from experiments.configs import base, classifier_fmnist


def get_config():
    c = classifier_fmnist.get_config()
    c.unlock()
    base.make_tiny(c)
    c.model.update(dict(widths=(4, 8), feature_dim=16))
    c.optimizer.warmup_steps = 0
    c.lock()
    return c
