"""Early stopping: training loss keeps falling, validation loss turns up; restore the best.

What it shows, measured: an over-parameterised MLP (1-128-128-1, ~17k weights) fit to 30 noisy
samples of a sine wave with full-batch Adam (so one step is one epoch). First it learns the
smooth function and every loss falls; then it starts fitting the noise: the training loss
keeps falling towards zero while the validation loss turns up (a U shape). Early stopping
watches the validation loss, stops after `patience` epochs without improvement, and restores
the best checkpoint (a copy of the state_dict taken at the best validation loss). On a third,
held-out test set (never used for any decision) the restored model is better than the final
one, and close to the best test loss reached at any epoch. Close, not equal: with only 30
validation points the chosen epoch is noisy (here the restored model is typically 0-5%, at
worst ~15%, above the best test loss any epoch had, while the final model is 5-250% above).
The demo keeps training to the end of the budget anyway, to show what stopping avoided.

Double descent: with enough parameters and label noise, the test error can fall *again* after
the interpolation peak (epoch-wise double descent, Nakkiran et al. 2019, "Deep Double
Descent"). The demo checks for a second descent in its own curve and reports what it sees:
in this setup the validation loss rises and mostly plateaus after its minimum rather than
coming down again. Do not assume early stopping is always optimal in very large models
trained for very long.

Run: dlprep demo early-stopping
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn as nn

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)

    # ---- data: a sine wave plus noise; train / validation / test ---------------------------
    phase = float(torch.rand(1, generator=g)) * 2 * math.pi
    noise = 0.3  # label noise std: the best possible MSE is noise^2 = 0.09

    def sample(n: int):
        x = torch.rand(n, 1, generator=g) * 4 - 2  # (n, 1) in [-2, 2]
        y = torch.sin(3 * x + phase) + noise * torch.randn(n, 1, generator=g)
        return x.to(device), y.to(device)

    x_tr, y_tr = sample(30)
    x_va, y_va = sample(30)  # what early stopping watches
    x_te, y_te = sample(2000)  # held out: only for judging the result

    torch.manual_seed(ctx.seed)
    hidden = 128
    model = nn.Sequential(
        nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
        nn.Linear(hidden, 1),
    ).to(device)  # fmt: skip
    n_params = sum(p.numel() for p in model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def mse(x, y) -> float:
        with torch.no_grad():
            return ((model(x) - y) ** 2).mean().item()

    epochs = ctx.pick(2000, 8000)
    patience = 200  # epochs without a new best validation loss before stopping
    every = 20  # record the curves every 20 epochs
    best_val, best_epoch, best_state = math.inf, 0, None
    stop_epoch = None
    curves: dict[str, list[float]] = {"train": [], "validation": [], "test": []}
    val_all: list[float] = []  # validation loss after every epoch
    for epoch in range(1, epochs + 1):
        loss = ((model(x_tr) - y_tr) ** 2).mean()  # full batch: one step = one epoch
        opt.zero_grad()
        loss.backward()
        opt.step()

        val = mse(x_va, y_va)
        val_all.append(val)
        if stop_epoch is None:  # early stopping, as a training loop would do it
            if val < best_val:
                best_val, best_epoch = val, epoch
                best_state = copy.deepcopy(model.state_dict())  # the checkpoint
            elif epoch - best_epoch >= patience:
                stop_epoch = epoch  # a real loop would `break` here; we keep going to look
        if epoch % every == 0:
            curves["train"].append(mse(x_tr, y_tr))
            curves["validation"].append(val)
            curves["test"].append(mse(x_te, y_te))

    final = {"train": mse(x_tr, y_tr), "val": mse(x_va, y_va), "test": mse(x_te, y_te)}
    model.load_state_dict(best_state)  # restore the best checkpoint
    restored = {"train": mse(x_tr, y_tr), "val": mse(x_va, y_va), "test": mse(x_te, y_te)}

    # the shape of the validation curve (every epoch)
    val_c, test_c = val_all, curves["test"]
    i_min = min(range(len(val_c)), key=lambda i: val_c[i])
    min_epoch = i_min + 1
    best_test_any = min(test_c)
    peak_after = max(val_c[i_min:])
    # a real second descent comes back down to (about) the first minimum's level
    second_descent = peak_after > 1.1 * val_c[i_min] and val_c[-1] <= 1.05 * val_c[i_min]
    partial_fall = not second_descent and val_c[-1] < 0.9 * peak_after

    result = DemoResult(
        metrics={
            "parameters": n_params,
            "train_points": 30,
            "epochs": epochs,
            "epoch_of_min_validation": min_epoch,
            "best_checkpoint_epoch": best_epoch,
            "early_stop_epoch": stop_epoch,
            "restored_test_mse": restored["test"],
            "final_test_mse": final["test"],
            "best_test_mse_any_epoch": best_test_any,
            "noise_floor_mse": noise**2,
            "second_descent_seen": second_descent,
        },
        tables=[
            Table(
                f"MSE (noise floor {noise**2:.2f}); patience {patience} epochs",
                ["model", "epoch", "train", "validation", "test (held out)"],
                [
                    [
                        "restored best checkpoint",
                        best_epoch,
                        f"{restored['train']:.4f}",
                        f"{restored['val']:.4f}",
                        f"{restored['test']:.4f}",
                    ],
                    [
                        "final model",
                        epochs,
                        f"{final['train']:.4f}",
                        f"{final['val']:.4f}",
                        f"{final['test']:.4f}",
                    ],
                    [
                        f"best test, any of the epochs recorded every {every} (oracle)",
                        test_c.index(best_test_any) * every + every,
                        "",
                        "",
                        f"{best_test_any:.4f}",
                    ],
                ],
            )
        ],
        curves=[
            Curve(
                f"MSE every {every} epochs (early stopping fired at epoch {stop_epoch})",
                "epoch",
                curves,
                log_y=True,
            )
        ],
    )

    # ---- claims ------------------------------------------------------------------------------
    result.claim(
        "Training loss keeps falling after the best validation epoch (final <= 0.9x).",
        final["train"] <= 0.9 * restored["train"],
        f"train MSE at epoch {best_epoch}: {restored['train']:.4f}; at epoch {epochs}: "
        f"{final['train']:.4f}",
    )
    result.claim(
        "Validation loss is U-shaped: its minimum comes in the first half of training and it "
        "ends >= 10% above it.",
        min_epoch <= epochs / 2 and val_c[-1] >= 1.1 * val_c[i_min],
        f"min {val_c[i_min]:.4f} at epoch {min_epoch}; final {val_c[-1]:.4f} at epoch {epochs}",
    )
    result.claim(
        "Early stopping (patience) fires and the restored best checkpoint has a lower held-out "
        "test loss than the final model.",
        stop_epoch is not None and restored["test"] < final["test"],
        f"stopped at epoch {stop_epoch}, restored epoch {best_epoch}: test {restored['test']:.4f} "
        f"vs final {final['test']:.4f}",
    )
    gap_restored = restored["test"] - best_test_any
    gap_final = final["test"] - best_test_any
    result.claim(
        "The 30-point validation set is a good enough proxy: the restored model recovers most "
        "(>= 50%) of the test loss lost by training to the end, relative to the best epoch.",
        gap_restored <= 0.5 * gap_final,
        f"test above the best-at-any-epoch {best_test_any:.4f}: restored {gap_restored:+.4f} "
        f"({100 * gap_restored / best_test_any:+.0f}%), final {gap_final:+.4f} "
        f"({100 * gap_final / best_test_any:.0f}%)",
    )
    if second_descent:
        result.notes.append(
            f"A second descent is visible here: validation loss peaked at {peak_after:.4f} "
            f"after its minimum and came back down to {val_c[-1]:.4f} (epoch-wise double "
            "descent); early stopping at the first minimum would not see it."
        )
    elif partial_fall:
        result.notes.append(
            f"After its minimum ({val_c[i_min]:.4f}) the validation loss peaked at "
            f"{peak_after:.4f} and fell back to {val_c[-1]:.4f}, still "
            f"{val_c[-1] / val_c[i_min]:.1f}x the minimum: a bump, not a second descent that "
            "would beat early stopping."
        )
    else:
        result.notes.append(
            f"No second descent in this run: after its minimum ({val_c[i_min]:.4f}) the "
            f"validation loss rose to {peak_after:.4f} and ended at {val_c[-1]:.4f}."
        )
    return result
