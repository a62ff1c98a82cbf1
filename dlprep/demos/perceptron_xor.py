"""XOR needs a hidden layer AND a non-linearity: linear models, even deep ones, fail; an MLP fits.

What it shows: XOR's four points (0,0)->0, (0,1)->1, (1,0)->1, (1,1)->0 are not linearly
separable (Minsky & Papert, "Perceptrons", 1969). Proof in one line: a line w.x + b > 0 that
puts (0,1) and (1,0) on the positive side has w1 + b > 0 and w2 + b > 0; adding them gives
w1 + w2 + b > -b, and (0,0) on the negative side means b <= 0, so (1,1) lands on the
positive side too. So any linear classifier gets at most 3 of the 4 points (75%).

- Rosenblatt's perceptron rule (1958: on a mistake, w += (y - y_hat) x) provably converges
  when the data are linearly separable (Novikoff 1962). On AND it converges in a few epochs;
  on XOR it never does: with integer inputs the weights revisit an earlier state exactly, so
  it cycles forever.
- Logistic regression trained by gradient descent on XOR does not even find a 3-of-4 line:
  its loss is convex and its minimum is w = 0, b = 0, i.e. p = 0.5 for every point and
  loss ln 2 = 0.693. It "learns" to know nothing.
- Stacking linear layers without a non-linearity changes nothing: W3 (W2 (W1 x + b1) + b2) + b3
  is one affine map W x + b. The demo multiplies the trained weight matrices and checks the
  product reproduces the deep net's outputs, and the deep linear net's loss never gets below
  the best linear model's ln 2.
- One hidden layer with a non-linearity (tanh) fits XOR exactly. The perceptron rule cannot
  train that hidden layer (the step function has no useful gradient); gradient descent with
  a differentiable activation can, via backpropagation.

What really happens: 2 hidden units are enough to represent XOR, but gradient descent from a
random start gets stuck about half the time with 2 (tanh, Adam, here): the stuck runs sit at
loss ln(2)/2 = 0.347 (two points learnt, the other two left at p = 0.5) with a vanishing
gradient, and more steps do not free them (the share is the same after 500, 2,000 or
20,000 steps). Are these local minima? For the classic 2-2-1
sigmoid net with squared error, Hamey ("XOR has no local minima", Neural Networks, 1998) shows
the finite stationary points are not minima: runs are caught on plateaus, saddles or minima at
infinity. For training the difference is moot. With 8 hidden units it fits from every start
we tried. Width makes the optimisation easy, not just the representation possible.

Run: dlprep demo perceptron-xor
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

LN2 = math.log(2.0)


def bce_with_logits(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy on logits, elementwise: -y log s(z) - (1 - y) log(1 - s(z)) equals
    softplus(z) - y z, which never overflows. (Same values as F.binary_cross_entropy_with_logits,
    whose CPU kernel is far slower on tiny tensors when the cores are busy.)"""
    return F.softplus(logits) - targets * logits


def perceptron(x: torch.Tensor, y: torch.Tensor, max_epochs: int) -> dict:
    """Rosenblatt's rule, one point at a time; stops when an epoch makes no mistake or when
    the weights come back to a state seen at the end of an earlier epoch (a cycle). With 0/1
    inputs and step 1 the weights stay small integers, exact in floating point, so a repeated
    state is detected exactly."""
    w = torch.zeros(x.shape[1], device=x.device)
    b = torch.zeros((), device=x.device)
    seen = {}
    errors_per_epoch = []
    for epoch in range(max_epochs):
        errors = 0
        for xi, yi in zip(x, y, strict=True):
            y_hat = int((xi @ w + b).item() > 0)  # step activation
            if y_hat != int(yi):
                w += (int(yi) - y_hat) * xi  # move the line towards the missed point
                b += int(yi) - y_hat
                errors += 1
        errors_per_epoch.append(errors)
        if errors == 0:
            return {"converged": True, "epochs": epoch + 1, "errors": errors_per_epoch}
        state = (*w.tolist(), b.item())
        if state in seen:
            return {
                "converged": False,
                "epochs": epoch + 1,
                "cycle_from": seen[state] + 1,
                "errors": errors_per_epoch,
            }
        seen[state] = epoch
    return {"converged": False, "epochs": max_epochs, "errors": errors_per_epoch}


def fit_mlps(
    x, y, hidden: int, runs: int, steps: int, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """`runs` independent 2-`hidden`-1 tanh MLPs trained at once (batched weights; Adam is
    elementwise, so summing the runs' losses trains each exactly as if alone).
    Returns each run's accuracy on the 4 points and its final loss: (runs,), (runs,)."""
    device = x.device
    w1 = (torch.randn(runs, 2, hidden, generator=g) / math.sqrt(2)).to(device).requires_grad_()
    b1 = torch.zeros(runs, 1, hidden, device=device, requires_grad=True)
    w2 = (torch.randn(runs, hidden, 1, generator=g) / math.sqrt(hidden)).to(device)
    w2.requires_grad_()
    b2 = torch.zeros(runs, 1, 1, device=device, requires_grad=True)
    opt = torch.optim.Adam([w1, b1, w2, b2], lr=0.05)
    targets = y.expand(runs, -1)  # (R, 4)
    for _ in range(steps):
        hidden_act = torch.tanh(x @ w1 + b1)  # (R, 4, H): the non-linearity
        logits = (hidden_act @ w2 + b2).squeeze(-1)  # (R, 4)
        loss = bce_with_logits(logits, targets).mean(1)  # (R,)
        opt.zero_grad()
        loss.sum().backward()
        opt.step()
    accuracy = ((logits > 0).float() == targets).float().mean(1)
    return accuracy.detach(), loss.detach()


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    x = torch.tensor([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]], device=device)  # (4, 2)
    y_xor = torch.tensor([0.0, 1.0, 1.0, 0.0], device=device)  # (4,)
    y_and = torch.tensor([0.0, 0.0, 0.0, 1.0], device=device)
    steps = ctx.pick(500, 2000)

    # ---- 1. the perceptron rule: converges on AND, cycles on XOR -------------------------------
    p_and = perceptron(x, y_and, max_epochs=100)
    p_xor = perceptron(x, y_xor, max_epochs=100)

    # ---- 2. no line gets XOR right: try many random lines --------------------------------------
    n_lines = ctx.pick(20_000, 200_000)
    lines = torch.randn(n_lines, 3, generator=g).to(device)  # (N, 3): w1, w2, b
    scores = x @ lines[:, :2].T + lines[:, 2]  # (4, N)
    line_acc = ((scores > 0).float() == y_xor[:, None]).float().mean(0)  # (N,)
    best_line_acc = line_acc.max().item()

    # ---- 3. logistic regression (one linear layer + sigmoid) by gradient descent ---------------
    logreg = torch.nn.Linear(2, 1).to(device)
    opt = torch.optim.SGD(logreg.parameters(), lr=1.0)
    for _ in range(steps):
        loss = bce_with_logits(logreg(x).squeeze(1), y_xor).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        logreg_loss = bce_with_logits(logreg(x).squeeze(1), y_xor).mean().item()
        logreg_p = torch.sigmoid(logreg(x).squeeze(1))
    logreg_max_dev = (logreg_p - 0.5).abs().max().item()

    # ---- 4. a deep network WITHOUT non-linearities ---------------------------------------------
    deep_linear = torch.nn.Sequential(
        torch.nn.Linear(2, 8), torch.nn.Linear(8, 8), torch.nn.Linear(8, 1)
    ).to(device)
    opt = torch.optim.Adam(deep_linear.parameters(), lr=0.01)
    deep_losses = []
    for _ in range(steps):
        loss = bce_with_logits(deep_linear(x).squeeze(1), y_xor).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        deep_losses.append(loss.item())
    with torch.no_grad():
        out = deep_linear(x)  # (4, 1)
        l1, l2, l3 = deep_linear
        w_total = l3.weight @ l2.weight @ l1.weight  # (1, 2): the whole net is ONE matrix
        b_total = l3.weight @ (l2.weight @ l1.bias + l2.bias) + l3.bias  # (1,)
        collapsed = x @ w_total.T + b_total  # (4, 1)
        collapse_err = (out - collapsed).abs().max().item()
        deep_loss = bce_with_logits(out.squeeze(1), y_xor).mean().item()
        deep_acc = ((out.squeeze(1) > 0).float() == y_xor).float().mean().item()

    # ---- 5. one hidden layer + tanh, many random starts at once --------------------------------
    runs = ctx.pick(50, 400)
    acc_h8, _ = fit_mlps(x, y_xor, hidden=8, runs=runs, steps=steps, g=g)
    acc_h2, loss_h2 = fit_mlps(x, y_xor, hidden=2, runs=runs, steps=steps, g=g)
    fit_h8 = (acc_h8 == 1).float().mean().item()
    fit_h2 = (acc_h2 == 1).float().mean().item()
    stuck = loss_h2[acc_h2 < 1]
    stuck_loss = stuck.median().item() if len(stuck) else float("nan")

    result = DemoResult(
        metrics={
            "perceptron_and_epochs_to_converge": p_and["epochs"],
            "perceptron_xor_errors_per_epoch": p_xor["errors"],
            "random_lines_tried": n_lines,
            "best_random_line_accuracy": best_line_acc,
            "logreg_final_loss": logreg_loss,
            "ln2": LN2,
            "logreg_max_abs_p_minus_half": logreg_max_dev,
            "deep_linear_final_loss": deep_loss,
            "deep_linear_min_loss_seen": min(deep_losses),
            "deep_linear_accuracy": deep_acc,
            "deep_linear_vs_product_of_weights_max_diff": collapse_err,
            "mlp_h8_fraction_of_inits_fitting": fit_h8,
            "mlp_h2_fraction_of_inits_fitting": fit_h2,
            "mlp_h2_stuck_runs_median_loss": stuck_loss,
        },
        tables=[
            Table(
                "XOR: who can fit it",
                ["model", "trained by", "result"],
                [
                    [
                        "perceptron (step)",
                        "Rosenblatt rule",
                        f"AND: converged in {p_and['epochs']} epochs; XOR: "
                        + (
                            f"weights cycle (state of epoch {p_xor.get('cycle_from')} "
                            f"repeats at epoch {p_xor['epochs']})"
                            if "cycle_from" in p_xor
                            else f"no convergence in {p_xor['epochs']} epochs"
                        ),
                    ],
                    [
                        f"{n_lines} random lines",
                        "search",
                        f"best accuracy {best_line_acc:.0%}",
                    ],
                    [
                        "logistic regression",
                        f"GD, {steps} steps",
                        f"loss {logreg_loss:.4f} (ln 2 = {LN2:.4f}), "
                        f"max |p - 0.5| = {logreg_max_dev:.1e}",
                    ],
                    [
                        "3 linear layers, no activation",
                        f"Adam, {steps} steps",
                        f"loss {deep_loss:.4f}, accuracy {deep_acc:.0%}",
                    ],
                    [
                        "2-2-1 MLP, tanh",
                        f"Adam, {steps} steps",
                        f"{fit_h2:.0%} of {runs} inits reach 100%",
                    ],
                    [
                        "2-8-1 MLP, tanh",
                        f"Adam, {steps} steps",
                        f"{fit_h8:.0%} of {runs} inits reach 100%",
                    ],
                ],
            )
        ],
        notes=[
            "Logistic regression does not settle on one of the many 75% lines: the logistic "
            "loss is convex and its minimum on XOR is w = 0, b = 0 (p = 0.5 everywhere), so "
            "its 'accuracy' is decided by round-off around 0.5.",
            f"The 2-hidden-unit runs that fail end at median loss {stuck_loss:.3f} "
            f"(ln(2)/2 = {LN2 / 2:.3f}: two points learnt, two left at p = 0.5, gradient ~0).",
        ],
    )
    result.claim(
        "The perceptron rule converges on linearly separable data (AND) but never on XOR: "
        "its weights return to an earlier state, so it cycles forever.",
        p_and["converged"] and not p_xor["converged"] and "cycle_from" in p_xor,
        f"AND: {p_and['epochs']} epochs; XOR errors per epoch {p_xor['errors']}",
    )
    result.claim(
        "No line separates XOR: the best of many random linear classifiers gets 3 of 4 (75%).",
        abs(best_line_acc - 0.75) < 1e-9,
        f"best of {n_lines} random lines: {best_line_acc:.0%}",
    )
    result.claim(
        "Logistic regression trained by gradient descent ends at p = 0.5 for every XOR point "
        "(loss ln 2): the best linear model knows nothing.",
        abs(logreg_loss - LN2) < 1e-3 and logreg_max_dev < 0.02,
        f"loss {logreg_loss:.5f} vs ln 2 = {LN2:.5f}; max |p - 0.5| = {logreg_max_dev:.1e}",
    )
    result.claim(
        "A deep network without non-linearities is one linear map: the product of its weight "
        "matrices reproduces its outputs exactly.",
        collapse_err < 1e-5,
        f"max |net(x) - (W3 W2 W1) x - b| = {collapse_err:.1e}",
    )
    result.claim(
        "...so depth alone does not help: the 3-layer linear net never beats the linear "
        "model's loss ln 2 and gets at most 75% of XOR right.",
        min(deep_losses) > LN2 - 1e-4 and deep_acc <= 0.75,
        f"lowest loss seen {min(deep_losses):.5f} (ln 2 = {LN2:.5f}), accuracy {deep_acc:.0%}",
    )
    result.claim(
        "One hidden layer WITH a non-linearity (2-8-1, tanh) fits XOR 100% from (almost) "
        "every random start.",
        fit_h8 >= 0.95,
        f"{fit_h8:.0%} of {runs} initialisations reach 100% accuracy",
    )
    result.claim(
        "2 hidden units can represent XOR, but gradient descent from a random start often "
        "gets stuck with so few: width makes the optimisation easier.",
        fit_h2 <= 0.8 and fit_h8 - fit_h2 >= 0.2,
        f"2 hidden units: {fit_h2:.0%} of inits fit XOR; 8 hidden units: {fit_h8:.0%}",
    )
    return result
