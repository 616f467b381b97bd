"""PyTorch reference run of the classic VAE example architecture on Fashion-MNIST.

This script produces the reference number for the jaxgen acceptance criterion
"the MLP VAE trained 10 epochs on Fashion-MNIST must reach a test-set negative ELBO at or
below what the classic PyTorch example architecture (pytorch/examples vae/main.py) reaches
under the same budget".  It re-implements that example's model, loss and training loop
(written independently here, not copied):

* encoder: fc1 784->400 + ReLU, then fc21 / fc22 400->20 giving mu and logvar;
* decoder: fc3 20->400 + ReLU, fc4 400->784 + sigmoid (Bernoulli means);
* loss per batch: BCE summed over pixels and examples (reduction='sum') plus the analytic
  KL term -0.5 * sum(1 + logvar - mu^2 - exp(logvar));
* Adam, lr 1e-3, batch 128, train set reshuffled every epoch, last partial batch kept;
* test loss = sum of the batch losses over the 10000 test images / 10000, evaluated like
  the example's test(): eval mode, no grad, and -- as in the example -- the decoder is fed
  the *reparameterised sample* z = mu + eps * std, so the reported number is a
  single-sample Monte-Carlo estimate of the test negative ELBO (nats per example).

For context the JSON also records two extra, clearly separated test numbers that the
example does not print: the same single-sample estimate averaged over K independent
samples (a lower-variance estimate of the same negative ELBO), and the value with z = mu
(no sampling; not an ELBO, just a diagnostic).

Data are read directly from Debian's Fashion-MNIST IDX files in
/usr/share/datasets/fashion-mnist/ (gzip + numpy, pixels / 255 as float32 in [0, 1]).

torch is NOT a jaxgen dependency and is never imported by the package.  To run this script,
install it into a separate environment, e.g.::

    python3 -m venv /tmp/torchvenv
    /tmp/torchvenv/bin/pip install torch==2.13.0 numpy   # CPU wheel on this machine's pip
    /tmp/torchvenv/bin/python benchmarks/pytorch_reference_vae.py --seed 1

Results are printed and saved to benchmarks/results/pytorch_reference_vae_seed{seed}.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DATA_DIR = Path("/usr/share/datasets/fashion-mnist")
RESULTS_DIR = Path(__file__).resolve().parent / "results"


def read_idx_images(path: Path) -> np.ndarray:
    """Read an IDX3 gz image file into float32 [N, 784] in [0, 1]."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    n, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    pixels = np.frombuffer(raw, dtype=np.uint8, offset=16)
    assert pixels.size == n * rows * cols, (path, pixels.size, n, rows, cols)
    return pixels.reshape(n, rows * cols).astype(np.float32) / 255.0


def read_idx_labels(path: Path) -> np.ndarray:
    """Read an IDX1 gz label file into int64 [N]."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    n = int.from_bytes(raw[4:8], "big")
    labels = np.frombuffer(raw, dtype=np.uint8, offset=8)
    assert labels.size == n, (path, labels.size, n)
    return labels.astype(np.int64)


class VAE(nn.Module):
    """The classic example's MLP VAE: 784-400-20 encoder, 20-400-784 decoder."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = F.relu(self.fc1(x))
        return self.fc21(h), self.fc22(h)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
        # Sampled in both train and eval mode, as in the example.
        std = torch.exp(0.5 * logvar)
        return mu + torch.randn_like(std) * std

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z))))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.encode(x.view(-1, 784))
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_function(
    recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor
) -> torch.Tensor:
    """BCE summed over pixels and batch + analytic KL to N(0, I), summed over the batch."""
    bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce + kld


def train_epoch(
    model: VAE, opt: torch.optim.Optimizer, x_train: torch.Tensor, batch_size: int
) -> float:
    model.train()
    total = 0.0
    perm = torch.randperm(x_train.shape[0])
    for start in range(0, x_train.shape[0], batch_size):
        data = x_train[perm[start : start + batch_size]]
        opt.zero_grad()
        recon, mu, logvar = model(data)
        loss = loss_function(recon, data, mu, logvar)
        loss.backward()
        total += loss.item()
        opt.step()
    return total / x_train.shape[0]


@torch.no_grad()
def test_epoch(model: VAE, x_test: torch.Tensor, batch_size: int) -> float:
    """Exactly the example's test(): single reparameterised sample per image."""
    model.eval()
    total = 0.0
    for start in range(0, x_test.shape[0], batch_size):
        data = x_test[start : start + batch_size]
        recon, mu, logvar = model(data)
        total += loss_function(recon, data, mu, logvar).item()
    return total / x_test.shape[0]


@torch.no_grad()
def test_extras(model: VAE, x_test: torch.Tensor, batch_size: int, k: int) -> tuple[float, float]:
    """(mean over k single-sample estimates, z = mu diagnostic), nats per test example."""
    model.eval()
    mc_total = 0.0
    mean_total = 0.0
    for start in range(0, x_test.shape[0], batch_size):
        data = x_test[start : start + batch_size]
        mu, logvar = model.encode(data)
        for _ in range(k):
            z = model.reparameterize(mu, logvar)
            mc_total += loss_function(model.decode(z), data, mu, logvar).item()
        mean_total += loss_function(model.decode(mu), data, mu, logvar).item()
    n = x_test.shape[0]
    return mc_total / (k * n), mean_total / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1, help="torch seed (example default 1)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument(
        "--extra-samples",
        type=int,
        default=10,
        help="K for the extra K-sample-averaged test estimate (0 disables the extras)",
    )
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    x_train = torch.from_numpy(read_idx_images(args.data_dir / "train-images-idx3-ubyte.gz"))
    x_test = torch.from_numpy(read_idx_images(args.data_dir / "t10k-images-idx3-ubyte.gz"))
    # Labels are unused by the VAE; read them only to validate the files.
    y_train = read_idx_labels(args.data_dir / "train-labels-idx1-ubyte.gz")
    y_test = read_idx_labels(args.data_dir / "t10k-labels-idx1-ubyte.gz")
    assert x_train.shape == (60000, 784) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 784) and y_test.shape == (10000,)

    model = VAE()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)

    print(
        f"torch {torch.__version__}, threads={torch.get_num_threads()}, seed={args.seed}, "
        f"epochs={args.epochs}, batch={args.batch_size}, lr={args.lr}"
    )
    print("test loss = single reparameterised sample per test image, as in the example's test()")
    epochs = []
    t0 = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        te = time.perf_counter()
        train_loss = train_epoch(model, opt, x_train, args.batch_size)
        test_loss = test_epoch(model, x_test, args.batch_size)
        epoch_s = time.perf_counter() - te
        epochs.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "test_loss_single_sample": test_loss,
                "epoch_wall_s": epoch_s,
            }
        )
        print(
            f"epoch {epoch:2d}  train avg loss {train_loss:9.4f}  "
            f"test avg loss (1-sample) {test_loss:9.4f}  [{epoch_s:.1f}s]"
        )
    train_wall_s = time.perf_counter() - t0
    print(f"total wall time (train + per-epoch test): {train_wall_s:.1f}s")

    result = {
        "script": "benchmarks/pytorch_reference_vae.py",
        "description": (
            "classic pytorch/examples vae/main.py architecture (784-400-20, sigmoid decoder, "
            "BCE sum + KL), Adam lr 1e-3, batch 128, Fashion-MNIST from Debian IDX files"
        ),
        "test_loss_definition": (
            "sum over the 10000 test images of BCE(sum over pixels) + KL, divided by 10000, "
            "with z = one reparameterised sample per image (as in the example's test()); "
            "single-sample Monte-Carlo estimate of the test negative ELBO in nats/example"
        ),
        "seed": args.seed,
        "epochs_run": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "per_epoch": epochs,
        "final_test_loss_single_sample": epochs[-1]["test_loss_single_sample"],
        "train_wall_s": train_wall_s,
    }

    if args.extra_samples > 0:
        # Extras run after training and after the last reported test pass, so they do not
        # perturb the RNG stream that the example-style numbers above depend on.
        mc, at_mean = test_extras(model, x_test, args.batch_size, args.extra_samples)
        result["extra_final_test_neg_elbo_mean_of_k_samples"] = mc
        result["extra_k"] = args.extra_samples
        result["extra_final_test_loss_z_eq_mu_diagnostic"] = at_mean
        print(
            f"extra (not in the example): final test neg-ELBO averaged over "
            f"{args.extra_samples} samples {mc:.4f}; z=mu diagnostic {at_mean:.4f}"
        )

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"pytorch_reference_vae_seed{args.seed}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
