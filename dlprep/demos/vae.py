"""A small VAE on 8x8 images: the reparameterisation trick, the ELBO's two terms, the KL check.

What it shows (Kingma & Welling 2014, "Auto-Encoding Variational Bayes", arXiv 1312.6114):
- The reparameterisation trick. To train the encoder we need d/dmu and d/dsigma of
  E_{z~N(mu, sigma^2)}[f(z)]. Writing z = mu + sigma * eps with eps ~ N(0, 1) moves the
  randomness into eps, so z is a differentiable function of (mu, sigma) and an ordinary
  backward pass gives an unbiased Monte Carlo estimate of the gradient. On the toy objective
  f(z) = z^2, E[f] = mu^2 + sigma^2, so the exact gradients are 2 mu and 2 sigma: the estimate
  matches them within its standard error. In torch.distributions this is `.rsample()`;
  `.sample()` runs under no_grad and returns a tensor cut off from mu and sigma, so no
  gradient can reach the encoder through it.
- The KL term. For q = N(mu, diag sigma^2) and the prior N(0, I) it has a closed form,
  KL = 1/2 * sum(mu^2 + sigma^2 - 1 - log sigma^2), which agrees with a Monte Carlo estimate
  E_q[log q(z) - log p(z)] within error and with torch.distributions.kl_divergence.
- Training. The ELBO = E_q[log p(x|z)] - KL(q(z|x) || p(z)) rises on held-out images. The
  data are 8x8 binary images of a 2x2 square at one of 49 positions (two factors: row, col).

What really happens (the part the slogan "the KL pulls q towards the prior" hides):
- The KL term goes UP during training, from ~0 at initialisation: a code that tells the
  decoder where the square is must carry information, and the KL (the "rate") is the price of
  it. The ELBO rises because the reconstruction term rises far more.
- The average KL splits into I(x; z) + KL(q(z) || p(z)), where q(z) is the aggregate
  posterior, the encoder's codes pooled over the data (Hoffman & Johnson 2016, "ELBO
  surgery"). I(x; z) cannot exceed the data's entropy, log 49 = 3.89 nats, so a rate above
  3.89 nats puts at least the excess into a mismatch between q(z) and the prior. It shows:
  reconstructions are valid images, but many samples z ~ N(0, I) fall in gaps between the
  codes and decode to blends (fewer with longer training).
- The rate is spread over most of the 8 latent units rather than one unit per factor (row,
  column): nothing in the ELBO asks for an axis-aligned, "disentangled" code. With longer
  training a unit or two collapses to the prior (KL ~ 0).

Run: dlprep demo vae
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True

SIDE = 8  # images are SIDE x SIDE
SQUARE = 2  # the square is SQUARE x SQUARE pixels
LATENT = 8


def make_squares(n: int, g: torch.Generator) -> torch.Tensor:
    """n binary images (n, 64): a 2x2 square of ones at a uniformly random position."""
    positions = SIDE - SQUARE + 1  # 7 rows x 7 columns = 49 possible images
    rows = torch.randint(0, positions, (n,), generator=g)
    cols = torch.randint(0, positions, (n,), generator=g)
    images = torch.zeros(n, SIDE, SIDE)
    for dr in range(SQUARE):
        for dc in range(SQUARE):
            images[torch.arange(n), rows + dr, cols + dc] = 1.0
    return images.reshape(n, SIDE * SIDE)


class VAE(nn.Module):
    def __init__(self, hidden: int = 128):
        super().__init__()
        d = SIDE * SIDE
        self.encoder = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 2 * LATENT))
        self.decoder = nn.Sequential(nn.Linear(LATENT, hidden), nn.ReLU(), nn.Linear(hidden, d))

    def forward(self, x: torch.Tensor):
        mu, log_var = self.encoder(x).chunk(2, dim=1)  # (B, LATENT) each
        sigma = (0.5 * log_var).exp()
        eps = torch.randn_like(mu)
        z = mu + sigma * eps  # the reparameterisation trick: (B, LATENT), differentiable
        logits = self.decoder(z)  # (B, 64): Bernoulli decoder p(x|z)
        # reconstruction term log p(x|z), summed over pixels: (B,)
        recon = -nn.functional.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
        # closed-form KL(N(mu, sigma^2) || N(0, I)) per latent dimension: (B, LATENT)
        kl_per_dim = 0.5 * (mu**2 + sigma**2 - 1.0 - log_var)
        return recon, kl_per_dim


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    # ---- 1. the reparameterisation trick on a toy objective f(z) = z^2 ------------------------
    # E_{z~N(mu, sigma^2)}[z^2] = mu^2 + sigma^2, so dE/dmu = 2 mu and dE/dsigma = 2 sigma.
    mu = torch.tensor(0.7, device=device, requires_grad=True)
    sigma = torch.tensor(1.3, device=device, requires_grad=True)
    n = ctx.pick(20_000, 200_000)
    eps = torch.randn(n, generator=g).to(device)  # (n,)
    z = mu + sigma * eps  # (n,) each sample is a differentiable function of mu and sigma
    (z**2).mean().backward()
    # per-sample gradients are 2z (for mu) and 2z*eps (for sigma): their spread gives the
    # Monte Carlo standard error of the estimate
    with torch.no_grad():
        se_mu = (2 * z).std().item() / math.sqrt(n)
        se_sigma = (2 * z * eps).std().item() / math.sqrt(n)
    grad_mu, grad_sigma = mu.grad.item(), sigma.grad.item()
    exact_mu, exact_sigma = 2 * mu.item(), 2 * sigma.item()
    z_mu = abs(grad_mu - exact_mu) / se_mu
    z_sigma = abs(grad_sigma - exact_sigma) / se_sigma

    # the same with torch.distributions: rsample is reparameterised, sample is not
    dist = torch.distributions.Normal(mu, sigma)
    z_r = dist.rsample((4,))
    z_s = dist.sample((4,))
    rsample_has_graph = z_r.requires_grad and z_r.grad_fn is not None
    sample_has_graph = z_s.requires_grad or z_s.grad_fn is not None
    mu.grad, sigma.grad = None, None
    (z_r**2).mean().backward()
    rsample_grad_nonzero = mu.grad is not None and mu.grad.abs().item() > 0

    result.claim(
        "With z = mu + sigma*eps, backprop gives unbiased gradients of E[z^2]: they match the "
        "exact 2*mu and 2*sigma within 4 Monte Carlo standard errors.",
        z_mu < 4 and z_sigma < 4 and grad_mu != 0 and grad_sigma != 0,
        f"d/dmu {grad_mu:.4f} vs {exact_mu:.4f} ({z_mu:.1f} SE); "
        f"d/dsigma {grad_sigma:.4f} vs {exact_sigma:.4f} ({z_sigma:.1f} SE); n = {n}",
    )
    result.claim(
        "Normal(mu, sigma).rsample() keeps the graph to mu and sigma; .sample() returns a "
        "detached tensor, so no gradient can flow through it to the encoder.",
        rsample_has_graph and rsample_grad_nonzero and not sample_has_graph,
        f"rsample: requires_grad={z_r.requires_grad}, d/dmu={mu.grad.item():.3f}; "
        f"sample: requires_grad={z_s.requires_grad}, grad_fn={z_s.grad_fn}",
    )

    # ---- 2. closed-form KL vs Monte Carlo ---------------------------------------------------
    q_mu = torch.randn(LATENT, generator=g).to(device)  # (LATENT,)
    q_sigma = (0.5 * torch.randn(LATENT, generator=g)).exp().to(device)  # (LATENT,)
    closed = 0.5 * (q_mu**2 + q_sigma**2 - 1 - 2 * q_sigma.log()).sum().item()
    q = torch.distributions.Normal(q_mu, q_sigma)
    prior = torch.distributions.Normal(torch.zeros_like(q_mu), torch.ones_like(q_mu))
    samples = q.sample((ctx.pick(20_000, 200_000),))  # (n, LATENT)
    log_ratio = (q.log_prob(samples) - prior.log_prob(samples)).sum(1)  # (n,)
    mc, mc_se = log_ratio.mean().item(), log_ratio.std().item() / math.sqrt(len(log_ratio))
    library = torch.distributions.kl_divergence(q, prior).sum().item()
    result.claim(
        "The closed-form KL(N(mu, sigma^2) || N(0, I)) agrees with a Monte Carlo estimate of "
        "E_q[log q - log p] (within 4 SE) and with torch.distributions.kl_divergence.",
        abs(mc - closed) < 4 * mc_se and abs(library - closed) < 1e-4 * max(1.0, closed),
        f"closed form {closed:.4f}, Monte Carlo {mc:.4f} ± {mc_se:.4f}, library {library:.4f}",
    )

    # ---- 3. train the VAE: maximise the ELBO ------------------------------------------------
    train = make_squares(ctx.pick(2048, 8192), g).to(device)  # (N, 64)
    test = make_squares(1024, g).to(device)
    model = VAE().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    steps, batch = ctx.pick(600, 4000), 128
    every = steps // 20

    def evaluate() -> tuple[float, float, torch.Tensor]:
        with torch.no_grad():
            recon, kl = model(test)
        return recon.mean().item(), kl.sum(1).mean().item(), kl.mean(0)

    recon0, kl0, _ = evaluate()
    curve_recon, curve_kl, curve_elbo = [recon0], [kl0], [recon0 - kl0]
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(train), (batch,), generator=g).to(device)
        recon, kl = model(train[idx])
        loss = -(recon - kl.sum(1)).mean()  # negative ELBO, per image
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0:
            r, k, _ = evaluate()
            curve_recon.append(r)
            curve_kl.append(k)
            curve_elbo.append(r - k)
    recon1, kl1, kl_per_dim = evaluate()
    elbo0, elbo1 = recon0 - kl0, recon1 - kl1
    active = int((kl_per_dim > 0.1).sum().item())  # units that carry information
    kl_dims = sorted(kl_per_dim.tolist(), reverse=True)

    # ---- 4. generate: are decoded images valid (exactly one 2x2 square)? -------------------
    valid_set = make_squares(4096, g).unique(dim=0).to(device)  # the 49 valid images, (49, 64)

    def valid_fraction(z: torch.Tensor) -> float:
        with torch.no_grad():
            images = (model.decoder(z) > 0).float()  # most likely value of each pixel, (n, 64)
            matches = (images[:, None, :] == valid_set[None, :, :]).all(dim=2).any(dim=1)
        return matches.float().mean().item()

    with torch.no_grad():
        mu_test, _ = model.encoder(test).chunk(2, dim=1)  # posterior means, (1024, LATENT)
    valid_recon = valid_fraction(mu_test)
    n_gen = 1000
    valid_prior = valid_fraction(torch.randn(n_gen, LATENT, generator=g).to(device))

    result.curves.append(
        Curve(
            f"Held-out ELBO and its two terms (nats per image), every {every} steps",
            "step",
            {
                "ELBO": curve_elbo,
                "E_q[log p(x|z)]": curve_recon,
                "KL(q || prior)": curve_kl,
            },
        )
    )
    result.tables.append(
        Table(
            "Held-out ELBO terms (nats per image)",
            ["", "E_q[log p(x|z)]", "KL(q || prior)", "ELBO"],
            [
                ["at initialisation", round(recon0, 2), round(kl0, 3), round(elbo0, 2)],
                [f"after {steps} steps", round(recon1, 2), round(kl1, 2), round(elbo1, 2)],
            ],
        )
    )
    result.tables.append(
        Table(
            "KL per latent unit after training (nats per image)",
            ["latent unit (sorted)", "KL"],
            [[i + 1, round(v, 3)] for i, v in enumerate(kl_dims)],
        )
    )
    result.metrics = {
        "reparam_grad_mu": grad_mu,
        "reparam_grad_sigma": grad_sigma,
        "reparam_exact_mu": exact_mu,
        "reparam_exact_sigma": exact_sigma,
        "kl_closed_form": closed,
        "kl_monte_carlo": mc,
        "kl_monte_carlo_se": mc_se,
        "elbo_init": elbo0,
        "elbo_final": elbo1,
        "recon_final": recon1,
        "kl_final": kl1,
        "kl_per_dim_sorted": kl_dims,
        "active_units": active,
        "valid_reconstructions": valid_recon,
        "valid_prior_samples": valid_prior,
        "nats_to_name_a_position": math.log(49),
    }
    result.claim(
        "Training raises the held-out ELBO by more than 15 nats per image.",
        elbo1 - elbo0 > 15,
        f"ELBO {elbo0:.1f} -> {elbo1:.1f}",
    )
    result.claim(
        "The KL term rises during training (the code must carry information about where the "
        "square is); the ELBO rises because the reconstruction term rises far more.",
        kl1 > kl0 + 1 and (recon1 - recon0) > 3 * (kl1 - kl0),
        f"KL {kl0:.3f} -> {kl1:.2f}; E_q[log p(x|z)] {recon0:.1f} -> {recon1:.1f}",
    )
    result.claim(
        f"The held-out ELBO stays below -log 49 = {-math.log(49):.2f} nats: the ELBO is a lower "
        "bound on log p(x), and no model's average log-likelihood can beat minus the entropy of "
        "49 equally likely images.",
        elbo1 < -math.log(49),
        f"ELBO {elbo1:.2f} <= {-math.log(49):.2f}; gap {(-math.log(49) - elbo1):.2f} nats",
    )
    result.claim(
        "Decoding the posterior mean of a held-out image gives a valid image (one 2x2 square) "
        "almost always, but decoding z ~ N(0, I) from the prior gives far fewer valid images: "
        "the encoder's codes do not fill the prior, and samples landing in the gaps decode to "
        "blends.",
        valid_recon > 0.9 and valid_recon - valid_prior > 0.3,
        f"valid: {valid_recon:.0%} of reconstructions, {valid_prior:.0%} of {n_gen} prior samples",
    )
    result.claim(
        f"The rate (average KL) exceeds log 49 = {math.log(49):.2f} nats, the most information a "
        "code can carry about 49 images; so at least the excess is KL between the aggregate "
        "posterior and the prior, which is why prior samples hit gaps.",
        kl1 > math.log(49),
        f"rate {kl1:.2f} nats, so KL(q(z) || p(z)) >= {kl1 - math.log(49):.2f} nats",
    )
    spread = (
        "the two factors (row, column) are not given one unit each; the ELBO does not ask "
        "for a disentangled code"
        if active > 2
        else "as few as the two factors (row, column) need"
    )
    result.notes.append(f"{active} of {LATENT} latent units carry more than 0.1 nats: {spread}.")
    return result
