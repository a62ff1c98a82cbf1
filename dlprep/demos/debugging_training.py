"""Debugging a model that does not learn: four cheap checks, and the planted bugs each one catches.

What it shows (after Karpathy, "A Recipe for Training Neural Networks", 2019):

(a) The loss at initialisation. With C balanced classes and a softmax head whose logits start
    near zero, every class gets probability ~1/C, so the first loss is ~ln(C) (2.30 for 10
    classes). A much larger first loss means a badly scaled init (here: weights N(0, 1)
    instead of PyTorch's ~1/sqrt(fan_in) scale), confidently wrong from step 0.
(b) Overfit one small batch. A correct model and training loop drive the loss on 16 examples
    to ~0. If it cannot, something in the model or the loss is broken.
(c) Held-out accuracy against chance: a model that memorises its batch but predicts new data
    no better than the majority class has learned nothing about the task.
(d) Gradient flow, layer by layer, after one backward(): every parameter that should learn
    must have a gradient that is not None and not zero.

The planted bugs, and what catches them:
- optimizer.zero_grad() forgotten: .grad accumulates every past gradient, so with SGD the
  step keeps growing (~10x after 20 steps); Adam rescales the step, but each update follows
  the stale sum of all past gradients (whose norm rises ~100x over a run): training ends
  much worse. No single check is needed: the loss curve already looks wrong.
- labels shuffled relative to the inputs (x and y shuffled separately): the model still
  memorises the small batch, so check (b) passes; held-out accuracy stays at chance.
- a layer accidentally detached (a stray .detach() in forward): its weights get no gradient
  (None) and stay at their random init; the loss still goes down, thanks to the other
  layers, so only check (d) finds it.
- softmax applied before nn.CrossEntropyLoss, which applies log-softmax itself: the "logits"
  are then probabilities in [0, 1], so the loss can never go below ln(1 + (C-1)/e) (1.46
  for 10 classes) and the gradient shrinks ~10x; training crawls. Check (b) catches it.
  The argmax survives the second softmax, so accuracy suffers less than the loss: with
  enough steps it can come close to the correct model's, while the loss stays stuck.

Run: dlprep demo debugging-training
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True

D_IN, HIDDEN, N_CLASSES = 20, 64, 10
N_TRAIN, N_TEST = 2000, 2000

BUGS = ("none", "no zero_grad()", "shuffled labels", "detached layer", "softmax before CE")


class _Detach(torch.nn.Module):
    """The planted bug: cuts the graph, so nothing before it gets a gradient."""

    def forward(self, x):
        return x.detach()


def _mlp(bug: str = "none") -> torch.nn.Sequential:
    layers: list[torch.nn.Module] = [torch.nn.Linear(D_IN, HIDDEN), torch.nn.ReLU()]
    if bug == "detached layer":
        layers.append(_Detach())
    layers += [torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, N_CLASSES)]
    if bug == "softmax before CE":
        layers.append(torch.nn.Softmax(dim=1))  # CrossEntropyLoss will log-softmax this again
    return torch.nn.Sequential(*layers)


def _train(model, x, y, steps: int, bug: str, g: torch.Generator, lr: float = 1e-3):
    """Adam on minibatches of 64 (or the whole set, if smaller); returns losses, .grad norms."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses, grad_norms = [], []
    for _ in range(steps):
        if len(x) <= 64:
            idx = torch.arange(len(x), device=x.device)  # the whole (small) set
        else:
            idx = torch.randint(0, len(x), (64,), generator=g).to(x.device)
        loss = F.cross_entropy(model(x[idx]), y[idx])  # (B, C) logits -> mean loss
        if bug != "no zero_grad()":
            opt.zero_grad(set_to_none=True)
        loss.backward()
        grads = [p.grad.flatten() for p in model.parameters() if p.grad is not None]
        grad_norms.append(torch.cat(grads).norm().item())
        opt.step()
        losses.append(loss.item())
    return losses, grad_norms


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    metrics = result.metrics

    # 10 classes from a random linear teacher: roughly balanced, learnable by the MLP.
    teacher = torch.randn(D_IN, N_CLASSES, generator=g)
    teacher = teacher / teacher.norm(dim=0)  # equal-norm columns: no class is favoured

    def make(n):
        x = torch.randn(n, D_IN, generator=g)  # (n, 20)
        return x.to(device), (x @ teacher).argmax(dim=1).to(device)

    x_train, y_train = make(N_TRAIN)
    x_test, y_test = make(N_TEST)
    counts = torch.bincount(y_test, minlength=N_CLASSES)
    majority = (counts.max() / counts.sum()).item()  # "chance": always predict the top class

    # ---- (a) the loss at initialisation -----------------------------------------------------
    ln_c = math.log(N_CLASSES)
    init_losses, bad_losses = [], []
    for _ in range(ctx.pick(5, 20)):
        model = _mlp().to(device)  # PyTorch's default init: U(±1/sqrt(fan_in))
        bad = _mlp().to(device)
        with torch.no_grad():
            for p in bad.parameters():
                p.normal_(0.0, 1.0)  # the bug: unit-variance weights, no 1/sqrt(fan_in)
            init_losses.append(F.cross_entropy(model(x_train), y_train).item())
            bad_losses.append(F.cross_entropy(bad(x_train), y_train).item())
    mean_init = sum(init_losses) / len(init_losses)
    mean_bad = sum(bad_losses) / len(bad_losses)
    metrics.update(ln_C=ln_c, initial_loss_default_init=mean_init, initial_loss_bad_init=mean_bad)
    result.claim(
        f"At initialisation the loss is ≈ ln(C) = {ln_c:.3f} for C = {N_CLASSES} balanced "
        "classes: the softmax starts near uniform.",
        abs(mean_init - ln_c) < 0.1,
        f"mean first loss over {len(init_losses)} inits: {mean_init:.3f} "
        f"(range {min(init_losses):.3f}..{max(init_losses):.3f})",
    )
    result.claim(
        "A badly scaled init (weights N(0, 1), no 1/sqrt(fan_in)) starts confidently wrong: the "
        "first loss is many times ln(C).",
        min(bad_losses) > 5 * ln_c,
        f"first loss {mean_bad:.1f} on average (min {min(bad_losses):.1f}) vs ln(C) = {ln_c:.2f}",
    )

    # ---- (b)-(d) each planted bug against each check ----------------------------------------
    steps = ctx.pick(300, 1000)
    overfit_steps = ctx.pick(150, 300)
    # x and y shuffled separately: every input gets some other input's label
    perm = torch.randperm(N_TRAIN, generator=g).to(device)
    rows, curves, grad_curves, checks = [], {}, {}, {}
    for bug in BUGS:
        y_bug = y_train[perm] if bug == "shuffled labels" else y_train

        # (b) overfit one batch of 16
        torch.manual_seed(ctx.seed)
        model = _mlp(bug).to(device)
        small_losses, _ = _train(model, x_train[:16], y_bug[:16], overfit_steps, bug, g, lr=1e-2)
        overfit_loss = small_losses[-1]

        # (d) gradient flow: one backward from a fresh model, then look at every layer
        torch.manual_seed(ctx.seed)
        model = _mlp(bug).to(device)
        F.cross_entropy(model(x_train[:256]), y_bug[:256]).backward()
        linears = [m for m in model if isinstance(m, torch.nn.Linear)]
        layer_grads = {
            f"fc{i + 1}": None if m.weight.grad is None else m.weight.grad.norm().item()
            for i, m in enumerate(linears)
        }
        dead = [name for name, v in layer_grads.items() if v is None or v == 0.0]

        # (c) train on everything, then held-out accuracy
        model.zero_grad(set_to_none=True)
        losses, grad_norms = _train(
            model, x_train, y_bug, steps, bug, torch.Generator().manual_seed(ctx.seed)
        )
        with torch.no_grad():
            test_acc = (model(x_test).argmax(dim=1) == y_test).float().mean().item()

        checks[bug] = {
            "first_loss": losses[0],
            "final_loss": sum(losses[-20:]) / 20,
            "min_loss": min(losses),
            "overfit_loss": overfit_loss,
            "test_accuracy": test_acc,
            "dead_layers": dead,
            "layer_grads": layer_grads,
            "first_grad_norm": grad_norms[0],
            "last_grad_norm": grad_norms[-1],
        }
        curves[bug] = losses
        grad_curves[bug] = [math.log10(v) for v in grad_norms]
        rows.append(
            [
                bug,
                f"{overfit_loss:.3f}",
                f"{test_acc:.1%}",
                ", ".join(dead) if dead else "all flow",
                f"{checks[bug]['final_loss']:.3f}",
            ]
        )
    metrics["majority_class_accuracy"] = majority
    for bug, c in checks.items():
        slug = bug.replace(" ", "_").replace("()", "")
        metrics[f"{slug}_overfit_loss"] = c["overfit_loss"]
        metrics[f"{slug}_test_accuracy"] = c["test_accuracy"]
        metrics[f"{slug}_final_train_loss"] = c["final_loss"]
    result.tables.append(
        Table(
            f"Each bug against each check (chance = majority class {majority:.1%})",
            [
                "bug",
                "(b) loss on 16 examples",
                "(c) held-out acc.",
                "(d) no gradient",
                "final train loss",
            ],
            rows,
        )
    )
    result.tables.append(
        Table(
            "(d) Gradient norm of each Linear weight after one backward()",
            ["bug", *checks["none"]["layer_grads"]],
            [
                [bug, *("None" if v is None else f"{v:.3g}" for v in c["layer_grads"].values())]
                for bug, c in checks.items()
            ],
        )
    )
    result.curves.append(Curve("Training loss (Adam, minibatches of 64)", "step", curves))
    result.curves.append(Curve("log10 ‖.grad‖ at each step", "step", grad_curves))

    ok = checks["none"]
    result.claim(
        "A correct model and loop overfit one batch of 16 to near-zero loss, and generalise "
        "far above chance.",
        ok["overfit_loss"] < 0.01
        and ok["test_accuracy"] > majority + 0.4
        and not ok["dead_layers"],
        f"loss on 16 examples {ok['overfit_loss']:.4f}; held-out accuracy "
        f"{ok['test_accuracy']:.1%} (chance {majority:.1%}); all layers get gradients",
    )

    # With plain SGD the bug is easiest to see: the step is lr x .grad, and .grad is the sum
    # of every gradient so far, so the step grows step after step.
    step_sizes = {}
    for bug in ("none", "no zero_grad()"):
        torch.manual_seed(ctx.seed)
        model = _mlp().to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)
        batch_g = torch.Generator().manual_seed(ctx.seed)
        sizes = []
        for _ in range(20):
            idx = torch.randint(0, N_TRAIN, (64,), generator=batch_g).to(device)
            before = torch.cat([p.detach().flatten() for p in model.parameters()])
            if bug == "none":
                opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x_train[idx]), y_train[idx]).backward()
            opt.step()
            after = torch.cat([p.detach().flatten() for p in model.parameters()])
            sizes.append((after - before).norm().item())
        step_sizes[bug] = sizes
    growth_ok = step_sizes["none"][-1] / step_sizes["none"][0]
    growth_bug = step_sizes["no zero_grad()"][-1] / step_sizes["no zero_grad()"][0]
    metrics.update(sgd_step_growth_correct=growth_ok, sgd_step_growth_no_zero_grad=growth_bug)
    result.curves.append(
        Curve(
            "SGD (lr 0.01): size of each update ‖Δθ‖",
            "step",
            {
                "with zero_grad()": step_sizes["none"],
                "no zero_grad()": step_sizes["no zero_grad()"],
            },
        )
    )

    nz = checks["no zero_grad()"]
    growth = nz["last_grad_norm"] / ok["last_grad_norm"]
    result.claim(
        "Forgetting optimizer.zero_grad(): .grad becomes the sum of every gradient so far, so "
        "with SGD each step is larger than the last (5x+ after 20 steps).",
        growth_bug > 5 and growth_ok < 2,
        f"‖Δθ‖ at step 20 / step 1: {growth_bug:.1f}x without zero_grad(), {growth_ok:.2f}x "
        "with it (20x if every minibatch gradient pointed the same way)",
    )
    result.claim(
        "With Adam, which rescales the step, the same bug still wrecks training: .grad grows "
        "(10x+ above the correct run's by the end), every update follows the stale sum of all "
        "past gradients, and the run ends far worse.",
        growth > 10 and nz["final_loss"] > ok["final_loss"] + 0.3,
        f"‖.grad‖ at the last step: {nz['last_grad_norm']:.3g} vs {ok['last_grad_norm']:.3g} "
        f"({growth:.0f}x); final train loss {nz['final_loss']:.2f} vs {ok['final_loss']:.2f}",
    )

    sh = checks["shuffled labels"]
    result.claim(
        "Labels shuffled relative to the inputs: the model still memorises the small batch "
        "(check (b) passes), but held-out accuracy stays at chance (check (c) catches it).",
        sh["overfit_loss"] < 0.05 and sh["test_accuracy"] < majority + 0.05,
        f"loss on 16 examples {sh['overfit_loss']:.4f}; held-out accuracy "
        f"{sh['test_accuracy']:.1%} vs chance {majority:.1%}",
    )

    dt = checks["detached layer"]
    result.claim(
        "A detached layer gets no gradient (None): the per-layer gradient check names it, "
        "while the loss still falls thanks to the layers after it and check (b) passes.",
        dt["dead_layers"] == ["fc1"]
        and dt["final_loss"] < 0.8 * dt["first_loss"]
        and dt["overfit_loss"] < 0.05,
        f"layers without gradient: {dt['dead_layers']}; train loss {dt['first_loss']:.2f} -> "
        f"{dt['final_loss']:.2f}; loss on 16 examples {dt['overfit_loss']:.4f}; held-out "
        f"accuracy {dt['test_accuracy']:.1%} (correct model {ok['test_accuracy']:.1%})",
    )

    sm = checks["softmax before CE"]
    floor = math.log(1 + (N_CLASSES - 1) / math.e)  # best case: probabilities (1, 0, ..., 0)
    result.claim(
        f"Softmax before CrossEntropyLoss (which log-softmaxes again): the loss cannot go "
        f"below ln(1 + (C-1)/e) = {floor:.2f}, so the one-batch overfit fails; the first "
        "gradient is ~10x smaller and training stalls far above the correct run.",
        sm["min_loss"] >= floor - 1e-4
        and sm["overfit_loss"] > floor - 1e-4
        and sm["first_grad_norm"] < ok["first_grad_norm"] / 3
        and sm["final_loss"] > ok["final_loss"] + 0.5,
        f"lowest loss seen {sm['min_loss']:.3f} (floor {floor:.3f}); loss on 16 examples "
        f"{sm['overfit_loss']:.3f}; first ‖grad‖ {sm['first_grad_norm']:.3g} vs "
        f"{ok['first_grad_norm']:.3g}; final train loss {sm['final_loss']:.2f} vs "
        f"{ok['final_loss']:.2f}",
    )
    result.notes.append(
        "The softmax bug hurts the loss more than the accuracy: the second softmax keeps the "
        f"argmax, so held-out accuracy is {sm['test_accuracy']:.1%} vs the correct model's "
        f"{ok['test_accuracy']:.1%} while the loss is stuck above {floor:.2f}. Watch the loss, "
        "not only the accuracy."
    )
    result.notes.append(
        f"A detached layer (or a frozen one, requires_grad=False) does not stop training: the "
        f"layers after it learn on top "
        f"of its random features (held-out {dt['test_accuracy']:.1%} vs "
        f"{ok['test_accuracy']:.1%}), which is why only the gradient-flow check finds it."
    )
    return result
