"""Transfer learning: pretrain a small CNN, then scratch vs frozen features vs fine-tuning.

The setup, all made inside the demo: 16x16 images of noisy sinusoidal gratings.
- Source task (large: 4000 images): 8 classes = 8 orientations (0, 22.5, ..., 157.5 degrees),
  with random frequency, phase and contrast. A small CNN is pretrained on it.
- Related target: 4 NEW orientations (11.25 + k * 45 degrees), few labelled images per class.
  Same kind of evidence (orientation), new classes.
- Distant target: 4 classes = 4 spatial frequencies (1-4 cycles per image), random
  orientation. The source task taught the network to IGNORE frequency (it varied at random
  within each source class), so its features are the wrong ones here.

Three ways to use n labelled target images per class (Yosinski et al. 2014, "How
transferable are features in deep neural networks?", arXiv 1411.1792):
(a) from scratch: random initialisation, train everything;
(b) feature extraction ("linear probe"): freeze the pretrained backbone, train a new head;
(c) fine-tuning: start from the pretrained backbone with a new head and train all layers,
    the backbone with a 7x lower learning rate so the features move gently.
Plus (d) a linear head on a frozen RANDOM backbone (mean of 3), the control that says
whether the pretrained features carry anything at all.

What really happens (measured, and it depends on the data size and the task):
- Related task, few labels: both transfer methods beat training from scratch by a wide
  margin; frozen features and fine-tuning are about equal. With 100 labels per class,
  training from scratch catches up: the pretrained features save data, not capacity.
- Distant task: the frozen pretrained features are worse than training from scratch once
  there are enough labels (negative transfer), because pretraining made them invariant to
  the very factor the target needs; still, they beat frozen random features. Fine-tuning
  with the usual low backbone learning rate recovers only part of the gap; with the
  backbone as fast as the head it gets about as far as training from scratch. The low
  learning rate is a bet that the features are right: good for related tasks, a handicap
  for distant ones. With 5 labels per class nothing works well on the distant task (every
  method stays below 50%, chance being 25%).
- Kumar et al. 2022 (arXiv 2202.10054) add the out-of-distribution side: fine-tuning wins
  in-distribution but can distort good features and lose to linear probing under
  distribution shift; linear probing then fine-tuning (LP-FT) gets both. Only
  in-distribution test accuracy is measured here.

Run: dlprep demo transfer-learning
"""

from __future__ import annotations

import math

import torch
from torch import nn

from dlprep.demos._core import DemoContext, DemoResult, Table
from dlprep.demos._data import grating_images

STATISTICAL = True

SIDE = 16
NOISE = 1.0


def gratings(
    n: int, task: str, g: torch.Generator, balanced: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """n noisy grating images (n, 1, 16, 16) and labels (n,) for one of the three tasks.

    balanced: exactly n / n_classes images per class (for the small labelled sets).
    """
    n_classes = 8 if task == "source" else 4
    if balanced:
        labels = (torch.arange(n) % n_classes)[torch.randperm(n, generator=g)]
    else:
        labels = torch.randint(0, n_classes, (n,), generator=g)
    if task == "distant":  # the class is the spatial frequency; orientation is random
        freq = 1.0 + labels.float()  # 1, 2, 3, 4 cycles per image
        angle = math.pi * torch.rand(n, generator=g)
    else:  # the class is the orientation; frequency is random
        if task == "source":
            angle = labels.float() * math.pi / 8  # 0, 22.5, ..., 157.5 degrees
        else:
            angle = math.pi / 16 + labels.float() * math.pi / 4  # 11.25, 56.25, ... degrees
        freq = 1.5 + 2.0 * torch.rand(n, generator=g)
    return grating_images(angle, freq, NOISE, g, SIDE), labels


class Net(nn.Module):
    def __init__(self, n_classes: int):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 8, 8, 8)
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # (B, 16, 4, 4)
            nn.Flatten(),  # (B, 256): the features that get transferred
        )  # fmt: skip
        self.head = nn.Linear(256, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


def train(model, x, y, steps, param_groups, g, batch=64) -> None:
    opt = torch.optim.Adam(param_groups)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (min(batch, len(x)),), generator=g).to(x.device)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(dim=1) == y).float().mean().item()


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()

    # ---- pretraining on the large source task ----------------------------------------------
    x_src, y_src = (t.to(device) for t in gratings(4000, "source", g))
    x_src_test, y_src_test = (t.to(device) for t in gratings(1000, "source", g))
    pretrained = Net(8).to(device)
    train(pretrained, x_src, y_src, ctx.pick(300, 1000), pretrained.parameters(), g)
    source_acc = accuracy(pretrained, x_src_test, y_src_test)
    result.claim(
        "The backbone learns the source task (8 orientations) well above chance (12.5%).",
        source_acc > 0.8,
        f"source test accuracy {source_acc:.3f}",
    )

    # ---- adapt to each target task with n labelled images per class ------------------------
    sizes = ctx.pick([5, 100], [2, 5, 20, 100])
    repeats = ctx.pick(1, 3)
    steps = ctx.pick(200, 300)
    methods = ["scratch", "frozen pretrained", "fine-tune", "frozen random"]
    acc = {}  # (task, n per class, method) -> mean test accuracy
    fast_fine_tune = []  # distant task, most labels: fine-tuning with the backbone at 2e-3
    for task in ("related", "distant"):
        x_test, y_test = (t.to(device) for t in gratings(1000, task, g))
        for n_per_class in sizes:
            scores = {m: [] for m in methods}
            for _ in range(repeats):
                x, y = gratings(4 * n_per_class, task, g, balanced=True)
                x, y = x.to(device), y.to(device)

                # (a) from scratch: everything random, everything trained
                model = Net(4).to(device)
                train(model, x, y, steps, [{"params": model.parameters(), "lr": 2e-3}], g)
                scores["scratch"].append(accuracy(model, x_test, y_test))

                # (b) feature extraction: the pretrained backbone frozen, a new linear head
                # (d) the same on frozen random backbones (3 of them, averaged): are the
                # pretrained features worth anything? A frozen backbone is a fixed function,
                # so its features are computed once.
                candidates = [("frozen pretrained", pretrained.backbone)] + [
                    ("frozen random", Net(4).to(device).backbone) for _ in range(3)
                ]
                random_scores = []
                for name, backbone in candidates:
                    with torch.no_grad():
                        f_train, f_test = backbone(x), backbone(x_test)  # (N, 256)
                    head = nn.Linear(256, 4).to(device)
                    train(head, f_train, y, steps, [{"params": head.parameters(), "lr": 1e-2}], g)
                    score = accuracy(head, f_test, y_test)
                    if name == "frozen random":
                        random_scores.append(score)
                    else:
                        scores[name].append(score)
                scores["frozen random"].append(sum(random_scores) / len(random_scores))

                # (c) fine-tuning: pretrained backbone, new head, all trained; backbone slower
                model = Net(4).to(device)
                model.backbone.load_state_dict(pretrained.backbone.state_dict())
                groups = [
                    {"params": model.backbone.parameters(), "lr": 3e-4},
                    {"params": model.head.parameters(), "lr": 2e-3},
                ]
                train(model, x, y, steps, groups, g)
                scores["fine-tune"].append(accuracy(model, x_test, y_test))

                # is the low backbone learning rate what holds fine-tuning back on the distant
                # task? the same, with the backbone as fast as the head
                if task == "distant" and n_per_class == sizes[-1]:
                    model = Net(4).to(device)
                    model.backbone.load_state_dict(pretrained.backbone.state_dict())
                    train(model, x, y, steps, [{"params": model.parameters(), "lr": 2e-3}], g)
                    fast_fine_tune.append(accuracy(model, x_test, y_test))
            for m in methods:
                acc[(task, n_per_class, m)] = sum(scores[m]) / repeats

    rows = [
        [task, n] + [round(acc[(task, n, m)], 3) for m in methods]
        for task in ("related", "distant")
        for n in sizes
    ]
    result.tables.append(
        Table(
            f"Target test accuracy (4 classes, chance 0.25), mean of {repeats} run(s), "
            f"{steps} steps each",
            ["target task", "labels per class"] + methods,
            rows,
        )
    )
    few, many = sizes[sizes.index(5)], sizes[-1]

    def a(task: str, n: int, m: str) -> float:
        return acc[(task, n, m)]

    best_transfer_few = max(a("related", few, "frozen pretrained"), a("related", few, "fine-tune"))
    result.claim(
        f"Related task, {few} labels per class: frozen pretrained features and fine-tuning "
        "both beat training from scratch by more than 15 points.",
        min(a("related", few, "frozen pretrained"), a("related", few, "fine-tune"))
        > a("related", few, "scratch") + 0.15,
        f"scratch {a('related', few, 'scratch'):.3f}, frozen "
        f"{a('related', few, 'frozen pretrained'):.3f}, fine-tune "
        f"{a('related', few, 'fine-tune'):.3f}",
    )
    best_many = max(a("related", many, m) for m in methods)
    result.claim(
        f"Related task, {many} labels per class: training from scratch catches up (within "
        "3 points of the best); pretraining saves labels rather than adding capacity.",
        a("related", many, "scratch") > best_many - 0.03,
        f"scratch {a('related', many, 'scratch'):.3f} vs best {best_many:.3f} "
        f"(with {few} per class the gap was "
        f"{best_transfer_few - a('related', few, 'scratch'):.3f})",
    )
    gain_related = a("related", many, "frozen pretrained") - a("related", many, "frozen random")
    gain_distant = a("distant", many, "frozen pretrained") - a("distant", many, "frozen random")
    result.claim(
        f"Distant task, {many} labels per class: frozen pretrained features lose to training "
        "from scratch by more than 10 points (negative transfer: the source task taught the "
        "features to ignore frequency).",
        a("distant", many, "frozen pretrained") < a("distant", many, "scratch") - 0.10,
        f"frozen {a('distant', many, 'frozen pretrained'):.3f} vs scratch "
        f"{a('distant', many, 'scratch'):.3f}",
    )
    result.claim(
        f"Yet even on the distant task ({many} per class) frozen pretrained features beat a "
        "frozen RANDOM backbone: features from a distant task are still better than random "
        "ones (as Yosinski et al. found), just worse than learning the right ones.",
        gain_distant > 0.05,
        f"frozen pretrained minus frozen random: distant {gain_distant:+.3f} (related "
        f"{gain_related:+.3f})",
    )
    result.claim(
        f"On the distant task fine-tuning beats frozen features ({many} per class): letting "
        "the backbone move adapts the features to the new task.",
        a("distant", many, "fine-tune") > a("distant", many, "frozen pretrained") + 0.05,
        f"fine-tune {a('distant', many, 'fine-tune'):.3f} vs frozen "
        f"{a('distant', many, 'frozen pretrained'):.3f}",
    )
    result.metrics = {
        "source_accuracy": source_acc,
        **{f"{task}_{n}_per_class_{m.replace(' ', '_')}": v for (task, n, m), v in acc.items()},
    }
    fast = sum(fast_fine_tune) / len(fast_fine_tune)
    result.metrics["distant_fine_tune_backbone_lr_2e-3"] = fast
    result.claim(
        "What holds fine-tuning back on the distant task is the low backbone learning rate: "
        "with the backbone as fast as the head (2e-3 instead of 3e-4) it gains more than 5 "
        "points.",
        fast > a("distant", many, "fine-tune") + 0.05,
        f"backbone lr 3e-4: {a('distant', many, 'fine-tune'):.3f}; 2e-3: {fast:.3f} "
        f"(scratch {a('distant', many, 'scratch'):.3f})",
    )
    result.notes.append(
        f"Distant task, {many} per class: fine-tuning with the backbone at 3e-4 reaches "
        f"{a('distant', many, 'fine-tune'):.3f}, with the backbone at 2e-3 (as fast as the "
        f"head) {fast:.3f}, training from scratch {a('distant', many, 'scratch'):.3f}. The low "
        "learning rate that protects useful features also keeps wrong ones: how far the "
        "features should move depends on how related the tasks are."
    )
    return result
