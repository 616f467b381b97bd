"""Input checks shared by the public API: shapes, dtypes and value ranges.

Checks on shape and dtype are static, so they run under `jax.jit` too. Value-range checks
need concrete values, so they run only when the array is not a tracer (eager calls, data
pipelines); inside `jit` they are skipped rather than forcing a host sync.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np


def is_concrete(x) -> bool:
    """True when `x` holds values (NumPy or a committed jax.Array), not an abstract tracer."""
    return not isinstance(x, jax.core.Tracer)


def check_floating(name: str, x) -> None:
    """Raise TypeError unless `x` has a floating dtype."""
    dtype = jnp.asarray(x).dtype if not hasattr(x, "dtype") else x.dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(
            f"{name} must be a floating-point array, got dtype {dtype}; "
            f"convert it first, e.g. `{name}.astype(jnp.float32)` (images: divide uint8 by 255)."
        )


def check_same_shape(**arrays) -> None:
    """Raise ValueError unless all keyword arrays share one shape."""
    shapes = {name: tuple(np.shape(a)) for name, a in arrays.items()}
    if len(set(shapes.values())) > 1:
        listing = ", ".join(f"{n}: {s}" for n, s in shapes.items())
        raise ValueError(f"expected arrays of the same shape, got {listing}.")


def check_broadcastable(**arrays) -> tuple[int, ...]:
    """Raise ValueError unless the arrays broadcast together; return the broadcast shape."""
    shapes = [tuple(np.shape(a)) for a in arrays.values()]
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        listing = ", ".join(f"{n}: {np.shape(a)}" for n, a in arrays.items())
        raise ValueError(f"arrays do not broadcast together: {listing}.") from None


def check_rank(name: str, x, rank: int, layout: str) -> None:
    """Raise ValueError unless `x` has `rank` dimensions; `layout` names them, e.g. 'B, H, W, C'."""
    if np.ndim(x) != rank:
        raise ValueError(
            f"{name} must have shape [{layout}] (rank {rank}), got shape {np.shape(x)}."
        )


def check_range(name: str, x, low: float, high: float, hint: str = "") -> None:
    """Raise ValueError if concrete `x` has values outside [low, high] (or non-finite values)."""
    if not is_concrete(x):
        return
    values = np.asarray(x)
    if values.size == 0:
        return
    lo, hi = float(values.min()), float(values.max())
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo < low or hi > high:
        raise ValueError(
            f"{name} must lie in [{low}, {high}], got values in [{lo}, {hi}]. {hint}".rstrip()
        )


class ConfigError(ValueError):
    """A setting has a value outside what it allows; the message names the setting, the value
    and the allowed range or choices."""


def check_choice(name: str, value, choices) -> None:
    """Raise ConfigError unless `value` is one of `choices`."""
    if value not in tuple(choices):
        raise ConfigError(f"{name}={value!r} is not allowed; choose one of "
                          f"{', '.join(repr(c) for c in choices)}.")


def check_number(name: str, value, *, low=None, high=None, low_open: bool = False,
                 high_open: bool = False, integer: bool = False) -> None:
    """Raise ConfigError unless `value` is a finite number in the interval given by `low` and
    `high` (closed ends unless ``low_open`` / ``high_open``), and an integer if ``integer``."""
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int if integer else (int, float)):
        raise ConfigError(f"{name}={value!r} must be {kind}.")
    lo = "" if low is None else f"{'(' if low_open else '['}{low}"
    hi = "" if high is None else f"{high}{')' if high_open else ']'}"
    allowed = (f"in {lo or '(-inf'}, {hi or 'inf)'}")
    bad = not math.isfinite(value)
    bad |= low is not None and (value <= low if low_open else value < low)
    bad |= high is not None and (value >= high if high_open else value > high)
    if bad:
        raise ConfigError(f"{name}={value!r} is out of range; it must be {kind} {allowed}.")
