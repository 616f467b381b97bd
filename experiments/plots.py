"""The results command's plots (PNG, matplotlib): sweeps and training curves.

* :func:`guidance_plot`: FD and class accuracy against the guidance weight w;
* :func:`steps_plot`: FD (and class accuracy) against network evaluations, a line per sampler;
* :func:`curves_plot`: a run's training curves, read from its TensorBoard event files
  (:func:`read_scalars`; the runner writes ``train/*`` every ``train.log_every`` steps and
  ``eval/*`` at each evaluation into ``<workdir>/tensorboard``).

Each function takes plain records and a path and returns the path it wrote. matplotlib runs
headless (the Agg backend), so no display is needed.
"""

from __future__ import annotations

import glob
import json
import math
import os
import struct
from collections.abc import Iterable, Mapping

# Training scalars that are not curves of the model's objective.
NOT_CURVES = ("train/steps_per_s", "train/learning_rate")
MAX_PANELS = 12


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path


def _records(path: str) -> Iterable[bytes]:
    """The records of a TFRecord file (length, its CRC, data, its CRC; the CRCs unchecked)."""
    with open(path, "rb") as f:
        data = f.read()
    i = 0
    while i + 12 <= len(data):
        (n,) = struct.unpack("<Q", data[i:i + 8])
        if i + 12 + n + 4 > len(data):  # a record still being written
            return
        yield data[i + 12:i + 12 + n]
        i += 12 + n + 4


def read_scalars(workdir: str) -> dict[str, list[tuple[int, float]]]:
    """Every scalar a run logged: ``{tag: [(step, value), …]}`` sorted by step, from its
    TensorBoard event files (several after a resume: a step logged twice keeps its last
    value) and, where present, a ``metrics.jsonl`` (one ``{"step": …, tag: value}`` a line)."""
    from tensorboardX.proto import event_pb2

    by_tag: dict[str, dict[int, float]] = {}
    for path in sorted(glob.glob(os.path.join(workdir, "tensorboard", "events.out.tfevents.*"))):
        for record in _records(path):
            event = event_pb2.Event()
            event.ParseFromString(record)
            for v in event.summary.value:
                if v.WhichOneof("value") == "simple_value":
                    by_tag.setdefault(v.tag, {})[int(event.step)] = float(v.simple_value)
    jsonl = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(jsonl):
        with open(jsonl) as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    step = int(row.pop("step"))
                    for tag, value in row.items():
                        if isinstance(value, int | float):
                            by_tag.setdefault(tag, {})[step] = float(value)
    return {tag: sorted(points.items()) for tag, points in sorted(by_tag.items())}


def training_seconds(scalars: Mapping[str, list], up_to_step: int | None = None
                     ) -> float | None:
    """The run's training time from its log, across every resume: the sum over logging
    windows of the window's steps divided by its ``train/steps_per_s`` (a window's rate is
    its steps over its wall time, evaluations and checkpoint saves inside it included). A
    window replayed after a resume counts once; None when the log has no rates."""
    rates = [(step, rate) for step, rate in scalars.get("train/steps_per_s", ())
             if rate > 0 and (up_to_step is None or step <= up_to_step)]
    if not rates:
        return None
    seconds, previous = 0.0, 0
    for step, rate in rates:
        seconds += (step - previous) / rate
        previous = step
    return seconds


def curve_panels(scalars: Mapping[str, list]) -> list[str]:
    """The metric names drawn, one panel each: every ``train/*`` scalar but the step rate and
    learning rate, then every ``eval/*`` mean without a training twin (standard errors and
    example counts are drawn with their means, not as curves)."""
    train = [t.split("/", 1)[1] for t in scalars if t.startswith("train/")
             and t not in NOT_CURVES and not t.endswith("_learning_rate")]  # GAN: d_, g_
    evals = [t.split("/", 1)[1] for t in scalars if t.startswith("eval/")
             and not t.endswith(("_se", "_num_examples"))]
    return (train + [m for m in evals if m not in train])[:MAX_PANELS]


def curves_plot(workdir: str, path: str, *, title: str | None = None) -> str | None:
    """A run's training curves (:func:`curve_panels`), the test-set evaluations as points with
    their standard errors; None (nothing written) when the run logged no scalars."""
    scalars = read_scalars(workdir)
    names = curve_panels(scalars)
    if not names:
        return None
    plt = _pyplot()
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names, strict=False):
        if f"train/{name}" in scalars:
            steps, values = zip(*scalars[f"train/{name}"], strict=True)
            ax.plot(steps, values, lw=1.2, label="train")
        if f"eval/{name}" in scalars:
            steps, values = zip(*scalars[f"eval/{name}"], strict=True)
            se = dict(scalars.get(f"eval/{name}_se", []))
            ax.errorbar(steps, values, yerr=[se.get(s, 0.0) for s in steps], fmt="o", ms=4,
                        capsize=3, label="test")
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if f"train/{name}" in scalars and f"eval/{name}" in scalars:
            ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(title or os.path.basename(os.path.normpath(workdir)))
    return _save(fig, path)


def guidance_plot(points: list[dict], path: str, *, fd: str, title: str) -> str:
    """FD (left) and, for a conditional model, class accuracy (right) against the guidance
    weight w, from sweep points ``{"guidance", "metrics": {fd: {"value"}, …}}``."""
    plt = _pyplot()
    accuracy = all("class_accuracy" in p["metrics"] for p in points)
    fig, axes = plt.subplots(1, 2 if accuracy else 1, figsize=(9 if accuracy else 4.8, 3.4),
                             squeeze=False)
    w = [p["guidance"] for p in points]
    axes[0, 0].plot(w, [p["metrics"][fd]["value"] for p in points], "o-")
    axes[0, 0].set_ylabel(fd)
    if accuracy:
        axes[0, 1].plot(w, [p["metrics"]["class_accuracy"]["value"] for p in points], "o-",
                        color="C1")
        axes[0, 1].set_ylabel("class accuracy")
        axes[0, 1].set_ylim(0, 1.02)
    for ax in axes.flat:
        ax.set_xlabel("guidance weight w (scale s = 1 + w)")
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def steps_plot(points: list[dict], path: str, *, fd: str, title: str) -> str:
    """FD (and, for a conditional model, class accuracy) against network evaluations per
    sample, a line per sampler, from sweep points ``{"sampler", "nfe", "metrics"}``."""
    plt = _pyplot()
    accuracy = all("class_accuracy" in p["metrics"] for p in points)
    fig, axes = plt.subplots(1, 2 if accuracy else 1, figsize=(9 if accuracy else 4.8, 3.4),
                             squeeze=False)
    samplers = list(dict.fromkeys(p["sampler"] for p in points))
    for i, name in enumerate(samplers):
        mine = sorted((p for p in points if p["sampler"] == name), key=lambda p: p["nfe"])
        nfe = [p["nfe"] for p in mine]
        axes[0, 0].plot(nfe, [p["metrics"][fd]["value"] for p in mine], "o-", color=f"C{i}",
                        label=name)
        if accuracy:
            axes[0, 1].plot(nfe, [p["metrics"]["class_accuracy"]["value"] for p in mine], "o-",
                            color=f"C{i}", label=name)
    axes[0, 0].set_ylabel(fd)
    if accuracy:
        axes[0, 1].set_ylabel("class accuracy")
        axes[0, 1].set_ylim(0, 1.02)
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    ticks = sorted({p["nfe"] for p in points})
    for ax in axes.flat:
        ax.set_xscale("log")
        ax.set_xticks(ticks)  # the swept counts, written as plain numbers
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("network evaluations per sample (NFE)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return _save(fig, path)
