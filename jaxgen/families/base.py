"""The family contract: what a model family gives the runner, and what it gets for free.

A family (autoencoders, diffusion, GANs, CycleGAN, ...) is one object built from its typed,
frozen config (a dataclass, validated when it is built) and the shape of its input images.
It owns its models, its initial state and the *per-device bodies* of everything that runs on
the devices; the runner (``experiments/runner.py``) owns what is the same for every family:
data, sharding, the loop, checkpoints, metrics, files and modes. Every body has the signature
``body(state, batch, key)`` and runs inside ``DataParallel.compile`` over the ``"data"`` axis,
on this device's shard of a global batch.

===================  =============================================================  ==========
member               meaning                                                        needed
===================  =============================================================  ==========
``name``             registry name (``jaxgen.families.get(name)``)                 yes
``Config``           the frozen config dataclass                                    yes
``data_kind``        ``"images"`` (batches ``{"image"}``) or ``"unpaired"``         yes
                     (``{"x", "y"}``, two domains)
``input_range``      ``"unit"`` ([0, 1]) or ``"symmetric"`` ([−1, 1]): the range    yes
                     of the images the bodies take and return
``init``             ``(key, tx, ema_decay=) -> state``: the initial host state;    yes
                     ``tx`` is one optimizer for every player, or ``{player:
                     optimizer}`` (what ``make_optimizers`` returns)
``make_optimizers``  ``(optimizer, num_steps) -> tx`` for ``init``, from the run's  no
                     ``optimizer`` settings and length in steps (called by the
                     runner); default: one :func:`make_optimizer` for every
                     player; two-player families: :func:`two_player_optimizers`
``train_body``       ``(state, batch, key) -> (state, metrics)``; gradients and     yes
                     metrics ``pmean``-ed (:func:`jaxgen.training.gradient_update`)
``eval_passes``      ``{name: EvalPass}``: per-example values on the test split;    yes
                     the runner reports their means as ``eval/<value name>``
``previews``         ``{name: Preview}``: test images and what the model makes of   no
                     them, written as image grids at every evaluation
``samplers``         names of the ways to generate (empty: no ``generate``)         no
``sampling_config``  the :class:`SamplingConfig` of ``--mode=sample`` and the       no
                     grids: the config's ``sampling`` section, or the defaults
                     where the config has none
``sample_inputs``    ``(key, n) -> {name: [n, ...]}``: the global noise of ``n``    with
                     samples, independent of the device count                       samplers
``sample_body``      ``(sampler) -> body`` mapping ``sample_inputs`` to images      with
                     (a conditional family also reads ``batch["label"]``, which     samplers
                     the runner puts beside the noise)
``conditional``      the models take the class label (``condition_on_classes``);    no
                     training batches then carry ``"label"``
``encode_body``      body returning per-example codes ``{name: [b, ...]}``, or None no
``directions``       translation directions (empty: no ``translate``)               no
``translate_body``   ``(direction) -> body`` mapping ``{"image"}`` to images        with
                                                                                    directions
``translate_config`` the :class:`TranslateConfig` of ``--mode=translate``: the      no
                     config's ``translate`` section, or the defaults
===================  =============================================================  ==========

Every family's config has a ``model`` section with ``dtype``, the models' compute dtype
(:data:`DTYPES`: ``"float32"``, the default, or ``"bfloat16"``; checked by
:func:`check_dtype`); parameters stay float32, and losses and returned images are float32.

Bodies that return images or codes return one row per example of the device's shard: the
runner compiles them with ``per_example=True`` and gathers the rows on the host.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxgen.training.keys import AXIS
from jaxgen.training.optim import OptimizerConfig, OptimizerOverrides, make_optimizer
from jaxgen.validation import ConfigError, check_number

Body = Callable[[Any, Any, jax.Array], Any]
Metrics = dict[str, jax.Array]
DATA_KINDS = ("images", "unpaired")
INPUT_RANGES = ("unit", "symmetric")
# The compute dtypes a family's ``model.dtype`` may name.
DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def check_dtype(key: str, value: str) -> None:
    """Raise ConfigError unless `value` names a compute dtype of :data:`DTYPES`."""
    if value not in DTYPES:
        raise ConfigError(f"{key}={value!r} is not a compute dtype; choose one of "
                          f"{', '.join(repr(d) for d in DTYPES)} (parameters stay float32).")


def compute_dtype(value: str) -> Any:
    """The JAX dtype ``model.dtype`` names (:data:`DTYPES`)."""
    check_dtype("model.dtype", value)
    return DTYPES[value]


@dataclasses.dataclass(frozen=True)
class EvalPass:
    """One pass over the test split.

    Attributes:
      body: ``(state, batch, key) -> {name: [b]}``, per-example values on this device's
        shard; names carry their unit (``neg_elbo_nats``, ``bpd``). The runner masks the
        padding, sums over devices and examples, and reports the mean of each.
      metrics: the names the body returns (its documentation; the contract tests check it).
      domain: the input: ``"image"`` for single-domain data, ``"x"`` or ``"y"`` for a domain
        of unpaired data (the batch is ``{"image": ...}`` either way).
      max_examples: examples used (0: the run's ``eval.max_examples``).
      batch_size: global batch (0: the run's ``eval.batch_size``).
    """

    body: Body
    metrics: tuple[str, ...]
    domain: str = "image"
    max_examples: int = 0
    batch_size: int = 0


@dataclasses.dataclass(frozen=True)
class Preview:
    """A grid of test images and what the model makes of them.

    Attributes:
      body: ``(state, {"image": [b, H, W, C]}, key) -> [b, k, H', W', C']`` (per example):
        ``k`` images per test image, in the family's input range, shown side by side.
      domain: ``"image"``, or ``"x"`` / ``"y"`` for unpaired data.
    """

    body: Body
    domain: str = "image"


@dataclasses.dataclass(frozen=True)
class SamplingConfig:
    """``--mode=sample`` and the sample grids of a family that generates."""

    sampler: str = ""  # "": the family's first sampler
    num_samples: int = 64  # --mode=sample
    batch_size: int = 64  # global samples per compiled call (fixes the noise per sample)
    write_png: bool = False  # --mode=sample: also one PNG per image
    # A conditional family: the classes to sample, ids or the data's class names, in turn
    # (sample i has classes[i % len]); empty: every class in turn.
    classes: tuple[str, ...] = ()
    grid_samplers: tuple[str, ...] = ()  # the samplers of the periodic grids; (): all

    def __post_init__(self):
        check_number("sampling.num_samples", self.num_samples, low=1, integer=True)
        check_number("sampling.batch_size", self.batch_size, low=1, integer=True)


@dataclasses.dataclass(frozen=True)
class TranslateConfig:
    """``--mode=translate`` of a family that translates."""

    direction: str = "x2y"
    input_dir: str = ""  # a folder of images; empty: the source domain's test split
    output_dir: str = ""  # empty: <workdir>/translated_<direction>; must be new or empty
    batch_size: int = 16
    overwrite: bool = False  # True: write into a non-empty output_dir (never the input's)

    def __post_init__(self):
        check_number("translate.batch_size", self.batch_size, low=1, integer=True)


class Family(abc.ABC):
    """Base class of the families; see the module docstring for the contract."""

    name: ClassVar[str]
    Config: ClassVar[type]
    data_kind: ClassVar[str] = "images"
    input_range: ClassVar[str] = "symmetric"
    samplers: ClassVar[tuple[str, ...]] = ()
    directions: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: Any, *, image_shape: tuple[int, int, int], num_classes: int = 0):
        if not isinstance(config, self.Config):
            raise TypeError(f"the {self.name} family takes a {self.Config.__name__}, got "
                            f"{type(config).__name__}.")
        self.config = config
        self.image_shape = tuple(image_shape)
        self.num_classes = num_classes  # of the data (0: unlabelled)
        self.conditional = False  # the models take the class label (condition_on_classes)

    def condition_on_classes(self, wanted: bool) -> None:
        """Make the family class-conditional when `wanted`: its bodies then read
        ``batch["label"]`` (int32 [b], in [0, num_classes)) — in training from the data, in
        sampling put beside the noise by the runner. Needs labelled data."""
        if wanted and self.num_classes < 1:
            raise ConfigError(f"a class-conditional {self.name} needs labelled data (a TFDS "
                              "dataset with a ClassLabel feature, or a folder with one "
                              "subfolder per class); this data has no labels. Turn "
                              "conditioning off or choose labelled data.")
        self.conditional = bool(wanted)

    def make_optimizers(self, optimizer: OptimizerConfig, num_steps: int) -> Any:
        """What :meth:`init` takes as ``tx`` for a run of `num_steps` steps (0: not training):
        here one optimizer for every player."""
        return make_optimizer(optimizer, num_steps)

    @abc.abstractmethod
    def init(self, key: jax.Array, tx: Any, *, ema_decay: float = 0.0) -> Any:
        """The initial state on the host; `tx` is one optimizer for every player or
        ``{player: optimizer}``. The player that evaluates and samples keeps an EMA of its
        parameters when ``ema_decay`` > 0."""

    @abc.abstractmethod
    def train_body(self, state: Any, batch: Mapping[str, jax.Array], key: jax.Array
                   ) -> tuple[Any, Metrics]:
        """One training step on this device's shard."""

    @abc.abstractmethod
    def eval_passes(self) -> dict[str, EvalPass]:
        """The test-set passes, by name."""

    def previews(self) -> dict[str, Preview]:
        return {}

    def sample_inputs(self, key: jax.Array, num: int) -> dict[str, jax.Array]:
        raise NotImplementedError(f"the {self.name} family does not generate.")

    def sample_body(self, sampler: str) -> Body:
        raise NotImplementedError(f"the {self.name} family does not generate.")

    # A body, or None where the family does not encode (the runner tests ``is not None``). A
    # family that encodes defines it as a method, ``def encode_body(self, state, batch,
    # key)``, so ``family.encode_body`` is that body bound to the family.
    encode_body: Body | None = None

    def translate_body(self, direction: str) -> Body:
        raise NotImplementedError(f"the {self.name} family does not translate.")

    @property
    def sampling_config(self) -> SamplingConfig:
        """The settings of ``--mode=sample`` and the sample grids, which the runner reads:
        the config's ``sampling`` section (a :class:`SamplingConfig` or a subclass), or the
        defaults where the config has none."""
        return _config_section(self, "sampling", SamplingConfig)

    @property
    def translate_config(self) -> TranslateConfig:
        """The settings of ``--mode=translate``: the config's ``translate`` section (a
        :class:`TranslateConfig`), or the defaults where the config has none."""
        return _config_section(self, "translate", TranslateConfig)


def _config_section(family: Family, name: str, cls: type) -> Any:
    """``family.config.<name>``, checked to be a `cls`; `cls`'s defaults where it is absent
    (or None)."""
    section = getattr(family.config, name, None)
    if section is None:
        return cls()
    if not isinstance(section, cls):
        raise TypeError(f"the {family.name} family's config has a `{name}` section of type "
                        f"{type(section).__name__}; the runner reads it as a {cls.__name__}: "
                        f"declare it as one (or a subclass).")
    return section


def gather_replicated(x: jax.Array) -> jax.Array:
    """This device's ``[b, ...]`` → the global ``[B, ...]`` (in device order), the same on
    every device and known to be: each device's rows are placed in a zero array and summed
    over the devices. (``all_gather``'s result counts as device-dependent in shard_map's
    replication check, so a state computed from it could not be returned replicated.)"""
    n = jax.lax.axis_size(AXIS)
    placed = jnp.zeros((n, *x.shape), x.dtype).at[jax.lax.axis_index(AXIS)].set(x)
    return jax.lax.psum(placed, AXIS).reshape(n * x.shape[0], *x.shape[1:])


def to_unit(images: jax.Array, input_range: str) -> jax.Array:
    """Images in `input_range` → [0, 1] (for grids and files)."""
    return images if input_range == "unit" else (images + 1.0) / 2.0


def image_axes(x: jax.Array) -> tuple[int, int, int]:
    """The pixel axes of ``[..., H, W, C]``."""
    return (x.ndim - 3, x.ndim - 2, x.ndim - 1)


def mean_over_pixels(x: jax.Array) -> jax.Array:
    return jnp.mean(x, axis=image_axes(x))


def player_optimizer(tx: Any, player: str) -> optax.GradientTransformation:
    """`player`'s optimizer from the ``tx`` that :meth:`Family.init` takes: ``tx[player]``
    for a mapping, else ``tx`` itself (one optimizer for every player)."""
    return tx[player] if isinstance(tx, Mapping) else tx


def two_player_optimizers(optimizer: OptimizerConfig, d_optimizer: OptimizerOverrides,
                          num_steps: int, *, d_updates_per_step: int = 1
                          ) -> dict[str, optax.GradientTransformation]:
    """The optimizers of a two-player game, ``{"generator": …, "discriminator": …}``.

    The generator player optimises with the run's settings (`optimizer`), the discriminator
    player with them as its ``d_optimizer`` section overrides them. The discriminator's
    schedule counts the run's steps although it is updated `d_updates_per_step` times a step:
    at step ``s`` both players' rates are their schedules at ``s``.
    """
    return {"generator": make_optimizer(optimizer, num_steps),
            "discriminator": make_optimizer(d_optimizer.apply(optimizer), num_steps,
                                            updates_per_step=d_updates_per_step,
                                            section="d_optimizer")}


@functools.partial(jax.jit, static_argnums=0, static_argnames="train")
def init_variables(module: nn.Module, key: jax.Array, *inputs: jax.Array,
                   train: bool | None = None) -> dict[str, Any]:
    """``module.init(key, *inputs)`` (with ``train=train`` when given), compiled once per
    module and input shapes: modules compare by their attributes, so the compiled init is
    reused across calls and family objects instead of traced anew each time."""
    kwargs = {} if train is None else {"train": train}
    return dict(module.init(key, *inputs, **kwargs))
