"""Model families behind one contract (:mod:`jaxgen.families.base`), and their registry.

``jaxgen.families.get("diffusion")`` gives the family class; ``names()`` lists them. Adding a
family: one module here with a :class:`~jaxgen.families.base.Family` subclass and its config
dataclass, one line in :data:`REGISTRY`, one config file in ``experiments/configs/``.
"""

from jaxgen.families.autoencoder import Autoencoder
from jaxgen.families.base import EvalPass, Family, Preview
from jaxgen.families.classifier import Classifier
from jaxgen.families.cyclegan import CycleGAN
from jaxgen.families.diffusion import Diffusion
from jaxgen.families.gan import GAN

REGISTRY: dict[str, type[Family]] = {
    f.name: f for f in (Autoencoder, Diffusion, GAN, CycleGAN, Classifier)
}


def names() -> list[str]:
    """The registered family names."""
    return sorted(REGISTRY)


def get(name: str) -> type[Family]:
    """The family class registered as `name`."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model family {name!r}; registered: {', '.join(names())}."
                       ) from None


__all__ = ["REGISTRY", "EvalPass", "Family", "Preview", "get", "names"]
