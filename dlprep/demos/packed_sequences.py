"""Variable-length batches: padding vs pack_padded_sequence, and masking the loss.

What it shows: to batch sequences of different lengths you pad them to the longest. An RNN run
on the padded batch does not know where each sequence ends: it keeps reading the pad tokens
(a zero embedding still moves the state through the biases), so its final hidden state h_n
for every short sequence is wrong. A unidirectional RNN's outputs at the real positions are
still right (it is causal: pads come after them), so outputs[b, length_b - 1] is a correct
workaround for h_n. A bidirectional RNN's backward direction, however, starts in the pads,
so even its outputs at real positions are wrong. torch.nn.utils.rnn.pack_padded_sequence
stores only the real time steps (time-major, with a batch size per step), the RNN processes
exactly sum(lengths) steps, and h_n and the outputs equal running every sequence on its own,
to round-off (float64 here; in float32 they agree to ~1e-7).

The loss has the same problem: averaging a per-token loss over the padded (B, T) grid
counts the pad positions. A masked mean, sum(loss * mask) / mask.sum() (or cross_entropy's
ignore_index), equals the mean over the real tokens, and its gradient equals the gradient of
the unpadded problem; the unmasked one gives a different value and different gradients.

Run: dlprep demo packed-sequences
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = False

PAD = 0


def max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    vocab, emb_dim, hidden = 20, 8, 16
    dtype = torch.float64  # so "equal" means round-off (and no TF32 in cuDNN's RNNs on a GPU)
    batch, t_max = ctx.pick((6, 12), (32, 40))

    # ---- a batch of token sequences of different lengths, padded with PAD ----------------
    lengths = torch.randint(1, t_max + 1, (batch,), generator=g)
    lengths[0] = t_max  # the longest one sets the padded length
    lengths[1] = 1  # and one that is almost all padding
    tokens = torch.full((batch, t_max), PAD, dtype=torch.long)  # (B, T)
    targets = torch.full((batch, t_max), PAD, dtype=torch.long)  # (B, T) a label per token
    for b, n in enumerate(lengths.tolist()):
        tokens[b, :n] = torch.randint(1, vocab, (n,), generator=g)
        targets[b, :n] = torch.randint(1, vocab, (n,), generator=g)
    tokens, targets = tokens.to(device), targets.to(device)
    mask = torch.arange(t_max).expand(batch, t_max) < lengths[:, None]  # (B, T) True = real
    mask = mask.to(device)

    embed = nn.Embedding(vocab, emb_dim, padding_idx=PAD, dtype=dtype).to(device)  # PAD -> 0
    uni = nn.LSTM(emb_dim, hidden, batch_first=True, dtype=dtype).to(device)
    bi = nn.LSTM(emb_dim, hidden, batch_first=True, bidirectional=True, dtype=dtype).to(device)
    head = nn.Linear(2 * hidden, vocab, dtype=dtype).to(device)  # per-token classifier
    x = embed(tokens)  # (B, T, E)

    # ---- the reference: each sequence alone, no padding at all ---------------------------
    ref = {"uni_h": [], "bi_h": [], "bi_out": []}
    for b, n in enumerate(lengths.tolist()):
        _, (h, _) = uni(x[b : b + 1, :n])  # h: (1, 1, H)
        ref["uni_h"].append(h[:, 0])
        out, (h, _) = bi(x[b : b + 1, :n])  # out: (1, n, 2H), h: (2, 1, H)
        ref["bi_h"].append(h[:, 0])
        ref["bi_out"].append(out[0])
    ref_uni_h = torch.stack(ref["uni_h"], dim=1)  # (1, B, H)
    ref_bi_h = torch.stack(ref["bi_h"], dim=1)  # (2, B, H)

    # ---- naive: run on the padded batch -------------------------------------------------
    out_uni, (naive_uni_h, _) = uni(x)  # (B, T, H), (1, B, H): h_n after T steps, pads included
    out_bi, (naive_bi_h, _) = bi(x)  # (B, T, 2H), (2, B, H)
    last = lengths.to(device) - 1
    gathered = out_uni[torch.arange(batch, device=device), last]  # (B, H) output at the real end
    naive_bi_out_err = max(
        max_diff(out_bi[b, :n], ref["bi_out"][b]) for b, n in enumerate(lengths.tolist())
    )
    naive_bi_fwd_err = max(
        max_diff(out_bi[b, :n, :hidden], ref["bi_out"][b][:, :hidden])
        for b, n in enumerate(lengths.tolist())
    )

    # ---- packed: only the real time steps ------------------------------------------------
    packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
    # packed.data: (sum(lengths), E), time-major; packed.batch_sizes[t] = #sequences alive at t
    _, (packed_uni_h, _) = uni(packed)  # h_n comes back in the original batch order
    packed_bi_out, (packed_bi_h, _) = bi(packed)
    unpacked, _ = pad_packed_sequence(packed_bi_out, batch_first=True)  # (B, T, 2H), zeros at pads
    packed_bi_out_err = max(
        max_diff(unpacked[b, :n], ref["bi_out"][b]) for b, n in enumerate(lengths.tolist())
    )
    steps_padded = batch * t_max
    steps_packed = packed.data.shape[0]

    errors = {
        "LSTM h_n, padded": max_diff(naive_uni_h, ref_uni_h),
        "LSTM outputs[b, len_b - 1], padded": max_diff(gathered, ref_uni_h[0]),
        "LSTM h_n, packed": max_diff(packed_uni_h, ref_uni_h),
        "BiLSTM h_n, padded": max_diff(naive_bi_h, ref_bi_h),
        "BiLSTM outputs at real steps, padded": naive_bi_out_err,
        "BiLSTM forward half at real steps, padded": naive_bi_fwd_err,
        "BiLSTM h_n, packed": max_diff(packed_bi_h, ref_bi_h),
        "BiLSTM outputs at real steps, packed": packed_bi_out_err,
    }

    # ---- the loss: per-token cross-entropy on the BiLSTM outputs -------------------------
    params = list(bi.parameters()) + list(head.parameters())

    def grads(loss: torch.Tensor) -> torch.Tensor:
        return torch.cat(
            [gr.flatten() for gr in torch.autograd.grad(loss, params, retain_graph=True)]
        )

    # reference: the real tokens only, each sequence run alone, one mean over all real tokens
    ref_logits = head(torch.cat(ref["bi_out"]))  # (sum(lengths), V)
    ref_targets = targets[mask]  # boolean indexing walks row by row, like the cat above
    ref_loss = F.cross_entropy(ref_logits, ref_targets)
    ref_grad = grads(ref_loss)

    per_token = F.cross_entropy(head(unpacked).transpose(1, 2), targets, reduction="none")  # (B, T)
    masked = (per_token * mask).sum() / mask.sum()
    unmasked = per_token.mean()  # pads count as tokens with target PAD
    ignore = F.cross_entropy(head(unpacked).transpose(1, 2), targets, ignore_index=PAD)
    per_sequence = ((per_token * mask).sum(1) / mask.sum(1)).mean()  # mean of sequence means
    losses = {
        "reference (real tokens only)": ref_loss,
        "masked mean": masked,
        "cross_entropy(ignore_index=PAD)": ignore,
        "unmasked mean over B x T": unmasked,
        "mean of per-sequence means": per_sequence,
    }
    loss_rows = []
    grad_err = {}
    for name, loss in losses.items():
        grad_err[name] = (grads(loss) - ref_grad).norm().item() / ref_grad.norm().item()
        loss_rows.append([name, f"{loss.item():.6f}", f"{grad_err[name]:.1e}"])

    result = DemoResult(
        metrics={
            "lengths": lengths.tolist(),
            "batch_sizes": packed.batch_sizes.tolist(),
            "time_steps_padded": steps_padded,
            "time_steps_packed": steps_packed,
            "max_abs_diff_vs_alone": errors,
            "losses": {k: v.item() for k, v in losses.items()},
            "grad_rel_error_vs_reference": grad_err,
        },
        tables=[
            Table(
                "Max |difference| from running each sequence on its own",
                ["what", "max |diff|"],
                [[k, f"{v:.1e}"] for k, v in errors.items()],
            ),
            Table(
                "Per-token cross-entropy over the batch",
                ["loss", "value", "‖grad - ref grad‖ / ‖ref grad‖"],
                loss_rows,
            ),
        ],
        notes=[
            f"Lengths {lengths.tolist()}: the padded batch runs {steps_padded} LSTM steps per "
            f"direction, the packed one {steps_packed} (batch sizes per step: "
            f"{packed.batch_sizes.tolist()}).",
            "At init the loss at a pad position is about log(vocab), like a real token's, so "
            f"the unmasked mean ({unmasked.item():.3f} vs {ref_loss.item():.3f}) hides the "
            "error; its gradient does not: it divides by B x T instead of the real-token count "
            "and pushes every pad position's logits towards the PAD class. Trained that way, "
            "the model learns to predict pads and the loss falls for nothing.",
            "The mean of per-sequence means weights a short sequence's tokens more than a long "
            "one's: a different (also legitimate) objective, not the per-token mean.",
        ],
    )
    tol = 1e-10  # float64 round-off: different batch shapes take different matmul paths
    result.claim(
        "Run on a padded batch, an LSTM's final hidden state h_n is wrong for the short "
        "sequences: it kept reading pad tokens.",
        errors["LSTM h_n, padded"] > 1e-2 and errors["BiLSTM h_n, padded"] > 1e-2,
        f"max |diff| {errors['LSTM h_n, padded']:.2e} (LSTM), "
        f"{errors['BiLSTM h_n, padded']:.2e} (BiLSTM)",
    )
    result.claim(
        "A unidirectional LSTM's outputs at the real positions are unaffected by padding "
        "(causal), so outputs[b, len_b - 1] gives the right final state; a bidirectional "
        "LSTM's are not (its backward pass starts in the pads).",
        errors["LSTM outputs[b, len_b - 1], padded"] < tol
        and errors["BiLSTM forward half at real steps, padded"] < tol
        and errors["BiLSTM outputs at real steps, padded"] > 1e-2,
        f"gathered {errors['LSTM outputs[b, len_b - 1], padded']:.1e}; BiLSTM forward half "
        f"{errors['BiLSTM forward half at real steps, padded']:.1e}, both halves "
        f"{errors['BiLSTM outputs at real steps, padded']:.2e}",
    )
    packed_err = max(
        errors["LSTM h_n, packed"],
        errors["BiLSTM h_n, packed"],
        errors["BiLSTM outputs at real steps, packed"],
    )
    result.claim(
        "With pack_padded_sequence, h_n and the outputs equal running each sequence alone "
        "(to float64 round-off), for the LSTM and the BiLSTM.",
        packed_err < tol,
        f"max |diff| {packed_err:.1e}",
    )
    result.claim(
        "A packed sequence holds only the real time steps: the RNN processes sum(lengths) "
        "steps, not B x T_max.",
        steps_packed == int(lengths.sum()) < steps_padded
        and packed.batch_sizes.tolist()
        == [int((lengths > t).sum()) for t in range(int(lengths.max()))],
        f"{steps_packed} steps packed vs {steps_padded} padded",
    )
    masked_ok = max(
        abs(masked.item() - ref_loss.item()),
        abs(ignore.item() - ref_loss.item()),
    )
    result.claim(
        "A masked mean (or ignore_index) of the per-token loss equals the mean over the real "
        "tokens, with the same gradients; the unmasked mean's gradients are far off (relative "
        "error > 50%), even though its value is within 10% of the right one.",
        masked_ok < tol
        and max(grad_err["masked mean"], grad_err["cross_entropy(ignore_index=PAD)"]) < 1e-10
        and grad_err["unmasked mean over B x T"] > 0.5
        and abs(unmasked.item() - ref_loss.item()) < 0.1 * ref_loss.item(),
        f"|masked - ref| {masked_ok:.1e}, grad rel err {grad_err['masked mean']:.1e}; "
        f"unmasked {unmasked.item():.4f} vs ref {ref_loss.item():.4f}, grad rel err "
        f"{grad_err['unmasked mean over B x T']:.2f}",
    )
    return result
