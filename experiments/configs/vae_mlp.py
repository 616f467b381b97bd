"""VAE, MLP 784-400-20 (the classic reference architecture), Bernoulli decoder (BCE).

Command:  python -m experiments.main --config experiments/configs/vae_mlp.py --workdir runs/vae_mlp
Budget:   10 epochs, batch 128, Adam 1e-3 (4,690 steps). Measured: docs/families/autoencoders.md.
"""

from experiments.configs import base


def get_config():
    c = base.get_image_config()
    c.family = "autoencoder"
    c.model = dict(variational=True, architecture="mlp", latent_dim=20, hidden=(400,),
                   channels=(32, 64), init="torch",  # PyTorch nn.Linear init, as the reference
                   # True: encoder and decoder see the class (one-hot), a conditional VAE
                   # (AE); sample by class with --config.sampling.classes=…; the CVAE's
                   # budget is --config.train.num_epochs=30 (docs/families/autoencoders.md)
                   class_conditional=False,
                   dtype="float32")  # compute dtype; "bfloat16": mixed precision
    c.loss = dict(reconstruction="bce", beta=1.0, gaussian_logvar=-4.6, corruption="none",
                  corruption_level=0.0)
    c.eval.iwae_samples = 100
    c.eval.iwae_max_examples = 10000  # global; 0: the whole test split
    c.eval.iwae_batch_size = 100  # global
    c.sampling = dict(num_samples=64, batch_size=64, write_png=False,  # --mode=sample
                      classes=())  # a conditional model: class ids or names, in turn; (): all
    c.lock()
    return c
