"""Post-LN vs Pre-LN Transformers at init: per-layer gradient norms and the residual stream's norm.

What it shows: the original Transformer is Post-LN, x_{l+1} = LN(x_l + F(x_l)); GPT-2 and most
LLMs are Pre-LN, x_{l+1} = x_l + F(LN(x_l)), with a final LayerNorm. Xiong et al. (2020) show
that at initialisation Post-LN's gradients are largest for the parameters near the output and
shrink towards the input, while Pre-LN's are about the same in every layer; and Pre-LN's last-
layer gradient is smaller, shrinking with depth like 1/sqrt(L). Measured here on stacks of
nn.TransformerEncoderLayer (norm_first=False / True) with a causal mask and a next-token loss,
averaged over several initialisations: the gradient norm of each layer's FFN output weight,
last layer against first, and the last layer's gradient for 6 vs 12 vs 24 layers.

The residual stream: in Post-LN every layer's output is re-normalised, so the stream's norm is
set by that LayerNorm's gain and bias (sqrt(d) at init, gain 1 and bias 0) at every depth; in
Pre-LN nothing rescales the stream, every sublayer adds to it, and its norm grows with depth.
Each later layer's write is then relatively smaller, one reason why deep Pre-LN models may
underuse their last layers (Liu et al. 2020).

What this demo does not claim: Xiong et al.'s training result, that Post-LN needs learning-rate
warm-up and trains far worse without it at a large learning rate. At CPU scale it showed only in
part: a previous 12-layer, d = 64 attempt with Adam did not reproduce it, and in a quick check
(6 layers, d = 64, Adam, 200 steps on a next-token pattern task, 2 seeds) both variants reached
the same loss at learning rates 1e-3 and 3e-3, with or without warm-up; at 1e-2 Post-LN ended
worse (loss 0.11-0.19 against 0.09 for Pre-LN), but a 50-step linear warm-up did not rescue it
(0.16-0.29). Too few runs for a claim, so none is made; their experiments were translation
Transformers and BERT pre-training. The gradients at init are the mechanism their argument
rests on.

Run: dlprep demo pre-ln-vs-post-ln
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True

VOCAB = 32


class Stack(nn.Module):
    def __init__(self, layers: int, d: int, pre_ln: bool):
        super().__init__()
        self.emb = nn.Embedding(VOCAB, d)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                d, 4, 4 * d, dropout=0.0, batch_first=True, norm_first=pre_ln
            )
            for _ in range(layers)
        )
        self.final_ln = nn.LayerNorm(d) if pre_ln else nn.Identity()  # Pre-LN needs one
        self.head = nn.Linear(d, VOCAB)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
        steps = x.shape[1]
        mask = nn.Transformer.generate_square_subsequent_mask(steps, device=x.device)
        h = self.emb(x)  # (B, T, d)
        stream = [h.norm(dim=-1).mean().item()]  # residual stream norm per token, per layer
        for layer in self.layers:
            h = layer(h, src_mask=mask, is_causal=True)
            stream.append(h.norm(dim=-1).mean().item())
        return self.head(self.final_ln(h)), stream


def measure(layers, d, pre_ln, inits, g, device):
    """Mean over inits of each layer's FFN-output-weight gradient norm, and the stream norms."""
    grads = torch.zeros(layers)
    streams = torch.zeros(layers + 1)
    for _ in range(inits):
        torch.manual_seed(int(torch.randint(0, 2**31, (1,), generator=g)))
        model = Stack(layers, d, pre_ln).to(device)
        x = torch.randint(0, VOCAB, (16, 33), generator=g).to(device)  # random tokens
        logits, stream = model(x[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), x[:, 1:].reshape(-1))
        loss.backward()
        grads += torch.tensor([layer.linear2.weight.grad.norm().item() for layer in model.layers])
        streams += torch.tensor(stream)
    return (grads / inits).tolist(), (streams / inits).tolist()


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    d = 64
    inits = ctx.pick(6, 10)
    depths = (6, 12, 24)
    grads, streams = {}, {}
    for depth in depths:
        for name, pre in (("Post-LN", False), ("Pre-LN", True)):
            grads[name, depth], streams[name, depth] = measure(depth, d, pre, inits, g, device)

    main = 12
    post, pre = grads["Post-LN", main], grads["Pre-LN", main]
    ratio_post = post[-1] / post[0]  # last layer / first layer
    ratio_pre = pre[-1] / pre[0]
    last_post = {depth: grads["Post-LN", depth][-1] for depth in depths}
    last_pre = {depth: grads["Pre-LN", depth][-1] for depth in depths}
    stream_post = streams["Post-LN", main]
    stream_pre = streams["Pre-LN", main]

    result = DemoResult(
        metrics={
            "ffn_out_grad_norm_by_layer_12": {"Post-LN": post, "Pre-LN": pre},
            "last_over_first_layer_grad": {"Post-LN": ratio_post, "Pre-LN": ratio_pre},
            "last_layer_grad_by_depth": {"Post-LN": last_post, "Pre-LN": last_pre},
            "residual_stream_norm_by_layer_12": {
                "Post-LN": stream_post,
                "Pre-LN": stream_pre,
            },
        },
        tables=[
            Table(
                f"Gradient norm of each layer's FFN output weight at init, {main} layers, d = {d} "
                f"(mean of {inits} inits)",
                ["layer"] + [str(i + 1) for i in range(main)],
                [
                    ["Post-LN"] + [f"{v:.3f}" for v in post],
                    ["Pre-LN"] + [f"{v:.3f}" for v in pre],
                ],
            ),
            Table(
                "Last layer's gradient norm vs depth",
                ["layers", "Post-LN", "Pre-LN", "Pre-LN x sqrt(L)"],
                [
                    [
                        dep,
                        f"{last_post[dep]:.3f}",
                        f"{last_pre[dep]:.3f}",
                        f"{last_pre[dep] * dep**0.5:.3f}",
                    ]
                    for dep in depths
                ],
            ),
            Table(
                f"Residual stream norm per token after each layer ({main} layers; sqrt(d) = "
                f"{d**0.5:.1f})",
                ["after layer"] + [str(i) for i in range(0, main + 1, 2)],
                [
                    ["Post-LN"] + [f"{v:.1f}" for v in stream_post[::2]],
                    ["Pre-LN"] + [f"{v:.1f}" for v in stream_pre[::2]],
                ],
            ),
        ],
        curves=[
            Curve(
                "FFN output-weight gradient norm by layer (12 layers)",
                "layer",
                {"Post-LN": post, "Pre-LN": pre},
                log_y=True,
            ),
            Curve(
                "Residual stream norm by layer",
                "layer",
                {"Post-LN": stream_post, "Pre-LN": stream_pre},
            ),
        ],
        notes=[
            "Not exactly Xiong et al.'s Figure 3: there Post-LN's gradient grows towards the "
            "output layer; with PyTorch's default initialisation at d = 64 it is about level "
            "across layers here, while Pre-LN's falls from the first layer to the last (later "
            "layers sit behind a larger residual stream, and LayerNorm divides by its norm). "
            "What holds is the comparison: Post-LN's gradients near the output are larger than "
            "Pre-LN's, and the gap widens with depth.",
            "Gradients at init only: no training run is claimed here (see the docstring).",
        ],
    )
    ratio_depth_post = last_post[24] / last_post[6]
    ratio_depth_pre = last_pre[24] / last_pre[6]
    result.claim(
        "Near the output, Post-LN's gradients at init are larger than Pre-LN's, and the gap "
        "widens with depth (Xiong et al. 2020).",
        all(last_post[dep] > 1.3 * last_pre[dep] for dep in (12, 24))
        and last_post[24] / last_pre[24] > last_post[6] / last_pre[6],
        ", ".join(f"{dep} layers: {last_post[dep]:.3f} vs {last_pre[dep]:.3f}" for dep in depths),
    )
    result.claim(
        "Pre-LN's last-layer gradient shrinks as the stack gets deeper; Post-LN's does not.",
        ratio_depth_pre < 0.85 and ratio_depth_post > 0.95,
        f"24 vs 6 layers: Pre-LN x{ratio_depth_pre:.2f} (1/sqrt(4) = 0.5), Post-LN "
        f"x{ratio_depth_post:.2f}",
    )
    result.claim(
        "Across the 12 layers Post-LN's gradients are about level (not growing towards the "
        "output as in Xiong et al.'s figure), while Pre-LN's fall from the first layer to the "
        "last.",
        0.67 < ratio_post < 1.5 and ratio_pre < 0.85,
        f"last / first layer: Post-LN {ratio_post:.2f}, Pre-LN {ratio_pre:.2f}",
    )
    growth = stream_pre[-1] / stream_pre[0]
    post_spread = max(abs(v / d**0.5 - 1) for v in stream_post[1:])
    result.claim(
        "At init the residual stream's norm stays at sqrt(d) in Post-LN (every layer "
        "re-normalises it, with gain 1) "
        "but grows with depth in Pre-LN (every sublayer adds to it, nothing rescales it).",
        post_spread < 0.05
        and growth > 1.2
        and all(b > a for a, b in zip(stream_pre, stream_pre[1:], strict=False)),
        f"Post-LN within {post_spread:.1%} of sqrt(d) = {d**0.5:.1f}; Pre-LN "
        f"{stream_pre[0]:.1f} -> {stream_pre[-1]:.1f} over {main} layers",
    )
    return result
