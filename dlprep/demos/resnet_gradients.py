"""Deep plain vs residual nets: per-layer gradient norms at init, and the degradation problem.

What it shows: ResNet is usually said to "fix vanishing gradients". He et al. (2016, "Deep
Residual Learning", arXiv 1512.03385, Sec. 4.1) say otherwise: with normalised initialisation
and BatchNorm a plain deep net's gradients do not vanish, yet the deeper plain net reaches a
*higher training loss* than a shallower one (the degradation problem): an optimisation
difficulty, not overfitting. This demo builds 30-block MLPs (width 64, He init) and measures:

1. Per-layer weight-gradient norms at init. Without normalisation and with PyTorch's default
   Linear init (variance 1/(3 fan_in): each ReLU layer keeps ~1/6 of the gradient's second
   moment) the gradient does vanish, ~0.4x per layer, ~1e-10 at the first layer. He init
   alone removes the trend (what is left is scatter). With BatchNorm it does not vanish
   either: it *grows* towards the input by about sqrt(pi/(pi-1)) ~ 1.21 per layer, the gradient
   explosion at init that Yang et al. (ICLR 2019, "A Mean Field Theory of Batch Normalization")
   derive for BN'd ReLU nets without skips. Healthy (non-vanishing) gradients, in other words.
2. The identity route: in a pre-activation residual net (He et al. 2016b, "Identity Mappings",
   arXiv 1603.05027) x_{l+1} = x_l + F(x_l), so dL/dx_l = dL/dx_L + (terms through the
   branches). The coefficient of the top gradient dL/dx_L in dL/dx_l is measured: ~1 at every
   block. In the plain net nothing of the top gradient survives a few layers down (cosine ~0).
3. Training, same data, optimiser and steps: a 4-block plain net and the 30-block residual net
   fit the training set within 200 steps; the 30-block plain nets (with BN, and without BN but
   with He init, whose gradients were level at init) are still at a much higher *training*
   loss. Given 1500 steps (full run) the BN plain net is still far behind; the no-norm one,
   at a smaller learning rate, fits in the end: deep plain nets converge slowly.

What really happens: the gap here is bigger than in the paper (He et al.'s plain-34 trained,
only worse than plain-18): in 200 steps the 30-block BN plain MLP only gets from 2.3 to ~1.9,
and the gap grows steadily with depth (measured while writing this demo, seed 0, 300 steps:
8/12/16/20 plain blocks reached 0.01/0.08/0.37/0.56, residual nets of those depths <= 0.03).
The plain net is not given a bad learning rate: while writing this demo SGD lr 0.005-0.2 and
Adam 1e-3 all left it far behind; the full run tries three learning rates for each 30-block
plain net and keeps the best. The gradient explosion at init is not the whole story either:
after training, the plain BN net's gradient profile is nearly flat (measured below; Yang et
al. report the same after a single step), yet it still trains badly.

Run: dlprep demo resnet-gradients
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True

WIDTH = 64  # hidden units per layer
DEEP = 30  # blocks in the deep nets
SHALLOW = 4  # blocks in the shallow plain net
D_IN, CLASSES = 16, 10
N_TRAIN, BATCH = 512, 128


class Block(nn.Module):
    """One hidden layer. Plain: h -> relu(bn(W h)). Residual (pre-activation): x + W relu(bn(x))."""

    def __init__(self, residual: bool, norm: bool, he_init: bool):
        super().__init__()
        self.residual = residual
        self.linear = nn.Linear(WIDTH, WIDTH)
        if he_init:  # variance 2/fan_in keeps ReLU activations' scale from layer to layer
            nn.init.kaiming_normal_(self.linear.weight, nonlinearity="relu")
            nn.init.zeros_(self.linear.bias)
        # else: PyTorch's default, U(-1/sqrt(fan_in), 1/sqrt(fan_in)): variance 1/(3 fan_in)
        self.norm = nn.BatchNorm1d(WIDTH) if norm else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, WIDTH) -> (B, WIDTH)
        if self.residual:
            return x + self.linear(torch.relu(self.norm(x)))  # the identity path: "+ x"
        return torch.relu(self.norm(self.linear(x)))


class Net(nn.Module):
    def __init__(self, blocks: int, residual: bool, norm: bool = True, he_init: bool = True):
        super().__init__()
        self.stem = nn.Linear(D_IN, WIDTH)
        self.blocks = nn.ModuleList(Block(residual, norm, he_init) for _ in range(blocks))
        # a pre-activation net ends with the BN + ReLU its last block did not apply
        final = [nn.BatchNorm1d(WIDTH), nn.ReLU()] if residual and norm else []
        self.head = nn.Sequential(*final, nn.Linear(WIDTH, CLASSES))

    def forward(self, x: torch.Tensor, keep: list | None = None) -> torch.Tensor:
        h = self.stem(x)  # (B, WIDTH)
        for block in self.blocks:
            h = block(h)
            if keep is not None:  # keep each block's output to read dL/dh later
                h.retain_grad()
                keep.append(h)
        return self.head(h)  # (B, CLASSES) logits


def make_data(g: torch.Generator, device: torch.device):
    """A learnable 10-class task: labels from a random teacher network, 512 training points."""
    x = torch.randn(N_TRAIN, D_IN, generator=g)  # (N, 16)
    w1 = torch.randn(D_IN, 64, generator=g)
    w2 = torch.randn(64, CLASSES, generator=g)
    y = (torch.tanh(x @ w1) @ w2).argmax(dim=1)  # (N,)
    return x.to(device), y.to(device)


def layer_grad_norms(net: Net, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """‖dL/dW_l‖ for every block's weight matrix, on one batch."""
    net.zero_grad()
    nn.functional.cross_entropy(net(x), y).backward()
    return [block.linear.weight.grad.norm().item() for block in net.blocks]


def growth_per_layer(norms: list[float]) -> float:
    """Factor by which ‖dL/dW‖ grows per layer towards the input: a straight-line fit of
    log-norm against depth (less noisy than the first/last ratio)."""
    n = len(norms)
    mean_l = (n - 1) / 2
    logs = [math.log(v) for v in norms]
    mean_log = sum(logs) / n
    slope = sum((i - mean_l) * (v - mean_log) for i, v in enumerate(logs)) / sum(
        (i - mean_l) ** 2 for i in range(n)
    )
    return math.exp(-slope)


def top_gradient_share(net: Net, x: torch.Tensor, y: torch.Tensor):
    """How much of the top block's output gradient g_L reaches block l's output gradient g_l.

    coef_l = <g_l, g_L> / <g_L, g_L> (1 if g_l = g_L + something orthogonal to it);
    cos_l = cosine(g_l, g_L).
    """
    net.zero_grad()
    outputs: list[torch.Tensor] = []
    nn.functional.cross_entropy(net(x, keep=outputs), y).backward()
    top = outputs[-1].grad.flatten()  # (B * WIDTH,)
    coef, cos = [], []
    for h in outputs:
        g = h.grad.flatten()
        coef.append((g @ top / (top @ top)).item())
        cos.append(nn.functional.cosine_similarity(g, top, dim=0).item())
    return coef, cos


def train(net: Net, x, y, steps: int, lr: float, g: torch.Generator) -> list[float]:
    """SGD with momentum 0.9 on random mini-batches; returns the mini-batch training losses.

    The update is torch.optim.SGD(momentum=0.9)'s, written out (v = 0.9 v + grad; w -= lr v):
    it is as fast and spares the ~1 s the first torch.optim optimizer takes to import."""
    params = list(net.parameters())
    velocity = [torch.zeros_like(p) for p in params]
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, N_TRAIN, (BATCH,), generator=g).to(x.device)
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        net.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p, v in zip(params, velocity, strict=True):
                v.mul_(0.9).add_(p.grad)
                p.sub_(v, alpha=lr)
        losses.append(loss.item())
    return losses


def smooth(losses: list[float], window: int) -> list[float]:
    return [sum(losses[i : i + window]) / window for i in range(0, len(losses), window)]


def run(ctx: DemoContext) -> DemoResult:
    # Thousands of tiny (128×64 @ 64×64) ops: on a CPU a second thread only adds a sync per op,
    # and on a busy machine each sync can wait a whole scheduler slice (measured: 40x slower).
    threads = torch.get_num_threads()
    if ctx.device == "cpu":
        torch.set_num_threads(1)
    try:
        return measure(ctx)
    finally:
        torch.set_num_threads(threads)


def measure(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    x, y = make_data(g, device)
    xb, yb = x, y  # the measurements at init use the whole training set as one batch
    early = 200  # the quick run's whole budget; the full run also reports the loss here
    steps = ctx.pick(early, 1500)
    lr = 0.05  # SGD with BN; without BN 0.05 diverges for some seeds, so that net gets 0.01
    bn_lrs = ctx.pick([lr], [0.01, lr, 0.2])  # the full run gives the deep plain nets a choice
    no_norm_lrs = ctx.pick([0.01], [0.002, 0.01, 0.05])

    # A constant predictor's best loss: the entropy of the label frequencies.
    freq = torch.bincount(y, minlength=CLASSES).float() / N_TRAIN
    baseline = -(freq[freq > 0] * freq[freq > 0].log()).sum().item()

    # ---- 1. per-layer gradient norms at init --------------------------------------------------
    configs = {  # name: (blocks, residual, batchnorm, He init)
        "plain, BN, He init": (DEEP, False, True, True),
        "residual, BN, He init": (DEEP, True, True, True),
        "plain, no norm, He init": (DEEP, False, False, True),
        "plain, no norm, default init": (DEEP, False, False, False),
    }
    nets, grads = {}, {}
    for name, (blocks, residual, norm, he) in configs.items():
        nets[name] = Net(blocks, residual, norm, he).to(device)
        grads[name] = layer_grad_norms(nets[name], xb, yb)
    first_last = {name: gs[0] / gs[-1] for name, gs in grads.items()}
    rates = {name: growth_per_layer(gs) for name, gs in grads.items()}
    bn_rate, he_rate = rates["plain, BN, He init"], rates["plain, no norm, He init"]
    bn_first_last = first_last["plain, BN, He init"]
    he_spread = max(grads["plain, no norm, He init"]) / min(grads["plain, no norm, He init"])

    # ---- 2. the identity route ----------------------------------------------------------------
    res_coef, res_cos = top_gradient_share(nets["residual, BN, He init"], xb, yb)
    _, plain_cos = top_gradient_share(nets["plain, BN, He init"], xb, yb)
    lower = slice(0, DEEP - 5)  # blocks at least 5 below the top

    # ---- 3. training: same data, steps and optimiser ------------------------------------------
    runs = {
        f"plain, {SHALLOW} blocks, BN": (Net(SHALLOW, False), [lr]),
        f"plain, {DEEP} blocks, BN": (nets["plain, BN, He init"], bn_lrs),
        f"residual, {DEEP} blocks, BN": (nets["residual, BN, He init"], [lr]),
        f"plain, {DEEP} blocks, no norm, He init": (nets["plain, no norm, He init"], no_norm_lrs),
    }
    curves, final, at_early, best_lr = {}, {}, {}, {}
    for name, (net, lrs) in runs.items():
        net.to(device)
        start = {k: v.clone() for k, v in net.state_dict().items()}
        for this_lr in lrs:  # same init and same batches for every learning rate
            net.load_state_dict(start)
            losses = train(net, x, y, steps, this_lr, torch.Generator().manual_seed(1))
            end = sum(losses[-20:]) / 20  # training loss at the end: last 20 mini-batches
            if name not in final or end < final[name]:
                curves[name], final[name], best_lr[name] = smooth(losses, 10), end, this_lr
                at_early[name] = sum(losses[early - 20 : early]) / 20
                best_state = {k: v.clone() for k, v in net.state_dict().items()}
        net.load_state_dict(best_state)
    # the same measurement as at init, on the trained deep nets
    deep_nets = {name: net for name, (net, _) in runs.items() if len(net.blocks) == DEEP}
    after = {name: layer_grad_norms(net, xb, yb) for name, net in deep_nets.items()}

    shallow = final[f"plain, {SHALLOW} blocks, BN"]
    plain_deep = final[f"plain, {DEEP} blocks, BN"]
    res_deep = final[f"residual, {DEEP} blocks, BN"]
    nonorm_name = f"plain, {DEEP} blocks, no norm, He init"
    nonorm_early = at_early[nonorm_name]
    res_early = at_early[f"residual, {DEEP} blocks, BN"]
    trained_bn = after[f"plain, {DEEP} blocks, BN"]
    trained_ratio = trained_bn[0] / trained_bn[-1]

    result = DemoResult(
        metrics={
            "grad_first_over_last_layer": first_last,
            "grad_growth_per_layer_towards_input": rates,
            "yang_et_al_prediction_sqrt_pi_over_pi_minus_1": math.sqrt(math.pi / (math.pi - 1)),
            "plain_bn_first_over_last_after_training": trained_ratio,
            "residual_top_gradient_coef_min_max": [min(res_coef), max(res_coef)],
            "plain_top_gradient_max_abs_cos_below_top5": max(abs(c) for c in plain_cos[lower]),
            "final_training_loss": final,
            f"training_loss_at_step_{early}": at_early,
            "constant_predictor_loss": baseline,
            "learning_rate_used": best_lr,
            "steps": steps,
        },
        tables=[
            Table(
                f"Weight-gradient norms at init, {DEEP} blocks (one batch of {N_TRAIN})",
                ["net", "‖dL/dW‖ block 1", f"block {DEEP}", "block 1 / block 30", "growth/layer"],
                [
                    [
                        name,
                        f"{gs[0]:.3g}",
                        f"{gs[-1]:.3g}",
                        f"{first_last[name]:.3g}",
                        f"{rates[name]:.3f}",
                    ]
                    for name, gs in grads.items()
                ],
            ),
            Table(
                "What reaches block l of the top block's output gradient g_L (at init)",
                ["block l", "residual: coef of g_L in g_l", "residual: cos", "plain BN: cos"],
                [
                    [i + 1, f"{res_coef[i]:.2f}", f"{res_cos[i]:.2f}", f"{plain_cos[i]:.2f}"]
                    for i in (0, 4, 9, 14, 19, 24, 27, 28, 29)
                ],
            ),
            Table(
                f"Training loss after {steps} steps (SGD, momentum 0.9, batch {BATCH})",
                ["net", "lr", f"training loss at step {early}", "final training loss"],
                [
                    [name, best_lr[name], f"{at_early[name]:.3f}", f"{loss:.3f}"]
                    for name, loss in final.items()
                ]
                + [["(constant predictor)", "-", f"{baseline:.3f}", f"{baseline:.3f}"]],
            ),
        ],
        curves=[
            Curve("‖dL/dW‖ per layer at init", "block (input → output)", grads, log_y=True),
            Curve(
                "‖dL/dW‖ per layer after training (30-block nets)",
                "block (input → output)",
                after,
                log_y=True,
            ),
            Curve("Training loss (mean of 10 mini-batches)", "step / 10", curves),
        ],
        notes=[
            f"BatchNorm does not stop a plain net's gradient from changing with depth: here it "
            f"grows {bn_rate:.3f}x per layer towards the input, close to Yang et al.'s "
            f"sqrt(pi/(pi-1)) = {math.sqrt(math.pi / (math.pi - 1)):.3f}. After training the "
            f"block 1 / block {DEEP} ratio is {trained_ratio:.3g} (was {bn_first_last:.3g} at "
            "init), yet the net still trains badly: degradation is not a gradient-size problem.",
            f"The residual net's gradient also grows towards the input "
            f"({rates['residual, BN, He init']:.3f}x per block): its Jacobian is still a "
            "product, but of factors I + dF/dx close to the identity, and the top gradient "
            "arrives at every block whole.",
            f"The plain net with He init and no BN has no trend in its gradient norms at init "
            f"({he_rate:.3f}x per layer) but they scatter from layer to layer (max/min "
            f"{he_spread:.2g}): a random walk in log-norm whose spread grows with depth/width "
            "(Hanin, NeurIPS 2018).",
            "Deep plain nets are slow rather than incapable (He et al. conjecture 'exponentially "
            f"low convergence rates'): after {steps} steps the final training loss is "
            f"{plain_deep:.3f} for plain BN, {final[nonorm_name]:.3f} for plain no-norm, "
            f"{res_deep:.3f} for residual"
            + (
                "; the no-norm plain net does get there given this many steps."
                if final[nonorm_name] < 0.1
                else "; rerun without --quick for 1500 steps and a choice of learning rates."
            ),
        ],
    )
    default = first_last["plain, no norm, default init"]
    result.claim(
        "Without normalisation and with PyTorch's default init, a 30-layer plain ReLU net's "
        "gradient vanishes towards the input.",
        default < 1e-4,
        f"‖dL/dW‖ block 1 / block 30 = {default:.1e}",
    )
    result.claim(
        "With He init and BatchNorm the plain net's gradient does not vanish: it grows towards "
        "the input, about 1.2x per layer (Yang et al. 2019 predict sqrt(pi/(pi-1)) = 1.21).",
        1.1 < bn_rate < 1.35,
        f"growth {bn_rate:.3f}/layer (fit); block 1 / block 30 = {bn_first_last:.3g}",
    )
    result.claim(
        "He init alone (no normalisation) keeps the plain net's gradient norms level at init: "
        "no exponential trend with depth (within 10% per layer), only layer-to-layer scatter.",
        0.9 < he_rate < 1.1,
        f"growth {he_rate:.3f}/layer; max/min over the 30 layers = {he_spread:.2f}",
    )
    result.claim(
        "The skip path is an identity route: the top gradient reaches every block of the residual "
        "net with coefficient ~1 (dL/dx_l = dL/dx_L + branch terms).",
        all(0.5 < c < 1.5 for c in res_coef),
        f"coef over blocks: {min(res_coef):.2f} … {max(res_coef):.2f}",
    )
    result.claim(
        "In the plain net nothing of the top gradient survives 5 layers down (|cos| < 0.2).",
        max(abs(c) for c in plain_cos[lower]) < 0.2,
        f"max |cos(g_l, g_L)| for l ≤ {DEEP - 5}: {max(abs(c) for c in plain_cos[lower]):.3f}",
    )
    result.claim(
        "Degradation: the 30-block plain net (BN, He init) ends at a much higher TRAINING loss "
        "than the 4-block plain net, on the same data, steps and optimiser.",
        plain_deep > 5 * shallow and plain_deep - shallow > 0.3,
        f"{plain_deep:.3f} vs {shallow:.3f}",
    )
    result.claim(
        "With skip connections the 30-block net trains as well as the shallow one (within 0.1) "
        "and far better than the 30-block plain net.",
        res_deep < shallow + 0.1 and plain_deep > 5 * res_deep,
        f"residual {res_deep:.3f}, shallow {shallow:.3f}, plain {plain_deep:.3f}",
    )
    result.claim(
        f"The 30-block plain net without BN (He init, level gradients at init) is also far "
        f"behind the residual net after {early} steps: healthy gradient norms at init do not "
        "make a deep plain net easy to train.",
        nonorm_early > 5 * res_early and nonorm_early - res_early > 0.3,
        f"training loss at step {early}: {nonorm_early:.3f} vs residual {res_early:.3f}",
    )
    return result
