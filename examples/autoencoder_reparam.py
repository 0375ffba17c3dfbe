"""A tiny variational autoencoder on the digits, trained through the reparameterization trick.

    python examples/autoencoder_reparam.py [--epochs 60] [--plot vae.png]

The encoder maps an image x to the mean mu and log-variance logvar of a Gaussian over a 2-D
latent code.  A sample z ~ N(mu, sigma^2) is written as

    z = mu + sigma * eps,   eps ~ N(0, I),   sigma = exp(logvar / 2)

so that z is a differentiable function of mu and sigma: the randomness lives in eps, a constant
for the derivative, and the gradient of the loss reaches the encoder through mu and sigma (the
course's "random functions": differentiate the sample path, not the distribution).  The sample
is ga.random.normal(mu, sigma, rng=rng), which draws eps inside a node without a derivative:
the compiled training step draws fresh noise from rng on every replay, and a Generator made
from the same seed gives the same noise (the gradient check at the end relies on it).

Loss (per image, averaged): the Bernoulli reconstruction error of the decoder's logits plus the
KL divergence of N(mu, sigma^2) from N(0, I),  KL = 1/2 sum(mu^2 + sigma^2 - logvar - 1).
"""
import argparse

import numpy as np
from sklearn.datasets import load_digits

import graphad as ga
from graphad import nn, optim

LATENT = 2


class VAE(nn.Module):
    def __init__(self, n_in=64, hidden=64, latent=LATENT, rng=0):
        rng = np.random.default_rng(rng)
        self.encoder = nn.Linear(n_in, hidden, rng=rng, init=nn.init.he_uniform)
        self.to_mu = nn.Linear(hidden, latent, rng=rng)
        self.to_logvar = nn.Linear(hidden, latent, rng=rng)
        self.decoder = nn.MLP([latent, hidden, n_in], activation="relu", rng=rng)

    def encode(self, x):
        h = ga.relu(self.encoder(x))
        return self.to_mu(h), self.to_logvar(h)

    def forward(self, x, rng):
        mu, logvar = self.encode(x)
        sigma = ga.exp(0.5 * logvar)
        z = ga.random.normal(mu, sigma, rng=rng)    # mu + sigma * eps: the reparameterization trick
        logits = self.decoder(z)
        recon = ga.sum(nn.binary_cross_entropy_with_logits(logits, x, reduction="none"),
                       axis=1)
        kl = 0.5 * ga.sum(mu * mu + sigma * sigma - logvar - 1.0, axis=1)
        return ga.mean(recon + kl), ga.mean(recon), ga.mean(kl)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=60)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--plot", default=None, help="PNG of reconstructions and the latent space")
    args = ap.parse_args()
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:
        pass

    d = load_digits()
    X = d.data / 16.0                                # pixel intensities in [0, 1]
    model = VAE()
    opt = optim.Adam(model.parameters(), lr=3e-3)

    rng = np.random.default_rng(0)
    noise = np.random.default_rng(1)                 # the latent noise eps

    def step(x):
        opt.zero_grad()
        loss, recon, kl = model(x, noise)
        loss.backward()
        opt.step()
        return loss, recon, kl

    step = ga.compile(step)                          # every replay draws fresh eps from noise
    n = len(X) - len(X) % args.batch_size
    for epoch in range(1, args.epochs + 1):
        perm = rng.permutation(len(X))[:n]
        totals = np.zeros(3)
        for i in range(0, n, args.batch_size):
            x = X[perm[i:i + args.batch_size]]
            totals += [float(v) for v in step(x)]
        if epoch % 10 == 0 or epoch == 1:
            t = totals / (n // args.batch_size)
            print(f"epoch {epoch:3d}  loss {t[0]:.2f} = reconstruction {t[1]:.2f} + KL {t[2]:.2f}")

    # the gradient really flows through the sample: d loss / d W_mu by reverse mode agrees
    # with finite differences along random directions, the noise eps held fixed (a Generator
    # from the same seed on every evaluation draws the same eps)
    x = X[:8]

    def loss_of_W_mu(W):
        saved, model.to_mu.W = model.to_mu.W, W
        try:
            return model(x, np.random.default_rng(7))[0]
        finally:
            model.to_mu.W = saved

    ga.check_grad(loss_of_W_mu, model.to_mu.W.data, modes=("rev",))
    print("gradient check through the reparameterized sample: ok")

    if args.plot:
        plot(model, X, d.target, args.plot)
        print(f"plot written to {args.plot}")


def plot(model, X, labels, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with ga.no_grad():
        mu, _ = model.encode(X)
        recon = ga.sigmoid(model.decoder(mu)).numpy()
    mu = mu.numpy()
    fig = plt.figure(figsize=(11, 4.5))
    ax = fig.add_subplot(1, 2, 1)
    sc = ax.scatter(mu[:, 0], mu[:, 1], c=labels, cmap="tab10", s=6)
    fig.colorbar(sc, ax=ax, label="digit")
    ax.set_title("latent means of the digits")
    for k in range(8):
        for row, img in enumerate((X[k], recon[k])):
            a = fig.add_subplot(4, 16, 9 + k + 16 * row)
            a.imshow(img.reshape(8, 8), cmap="gray_r")
            a.axis("off")
    fig.text(0.75, 0.92, "digits (top) and their reconstructions from mu (bottom)",
             ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
