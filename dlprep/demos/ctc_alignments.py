"""CTC loss = -log of the total probability of every alignment that collapses to the target.

What it shows: Connectionist Temporal Classification (Graves et al. 2006) trains a model that
emits one distribution per input frame (T frames, vocabulary plus a blank symbol) against a
shorter label sequence (length U <= T) without knowing which frame belongs to which label.
An alignment is a length-T path of symbols; the collapse map B removes repeated symbols and
then blanks ("a a - b b" -> "ab", "a - a" -> "aa": a blank is needed between two identical
labels). CTC assumes frames are conditionally independent given the input, so a path's
probability is the product of its per-frame probabilities, and
p(target | x) = sum over all paths with B(path) = target. The demo enumerates every one of the
(V+1)^T paths for a tiny case, keeps those that collapse to the target, sums their
probabilities, and checks that -log of that sum equals torch.nn.functional.ctc_loss, which
computes it with the forward (alpha) recursion in O(T U) instead of exponential time.

It also checks the consequences: the loss is finite only if T >= U + (number of adjacent
repeated labels), because each repeat needs a blank between its copies (ctc_loss returns inf
otherwise, or 0 with zero_infinity=True); and greedy decoding (argmax per frame, then
collapse) is not the same as the most probable label sequence, because a label's probability
is spread over many paths.

Run: dlprep demo ctc-alignments
"""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = False

BLANK = 0


def collapse(path: tuple[int, ...]) -> tuple[int, ...]:
    """CTC's map B: merge repeated symbols, then drop blanks."""
    merged = [s for i, s in enumerate(path) if i == 0 or s != path[i - 1]]
    return tuple(s for s in merged if s != BLANK)


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    frames, symbols = 6, 4  # T = 6 frames; symbols 0 (blank), 1, 2, 3
    logits = torch.randn(frames, symbols, generator=g, dtype=torch.float64)
    log_probs = logits.log_softmax(-1)  # (T, V + 1): one distribution per frame

    # ---- brute force: every path, grouped by what it collapses to -------------------------
    total: dict[tuple[int, ...], float] = {}
    n_paths = 0
    for path in itertools.product(range(symbols), repeat=frames):  # 4^6 = 4096 paths
        p = math.exp(sum(log_probs[t, s].item() for t, s in enumerate(path)))
        total[collapse(path)] = total.get(collapse(path), 0.0) + p
        n_paths += 1

    def torch_ctc(target: list[int], n_frames: int = frames) -> float:
        lp = log_probs[:n_frames, None, :].to(device)  # (T, N=1, C)
        tgt = torch.tensor([target], dtype=torch.long, device=device)  # (N, U)
        return F.ctc_loss(lp, tgt, [n_frames], [len(target)], blank=BLANK, reduction="sum").item()

    targets = [[1, 2], [1, 1], [3, 1, 2], [2, 2, 2]]
    rows, errors = [], []
    for target in targets:
        n_valid = sum(1 for path in itertools.product(range(symbols), repeat=frames)
                      if collapse(path) == tuple(target))  # fmt: skip
        brute = -math.log(total[tuple(target)])
        ours = torch_ctc(target)
        errors.append(abs(brute - ours))
        rows.append([str(target), n_valid, f"{brute:.6f}", f"{ours:.6f}"])

    result = DemoResult()
    result.tables.append(
        Table(
            f"CTC over T = {frames} frames, {symbols - 1} labels + blank ({n_paths} paths in all)",
            ["target", "paths collapsing to it", "-log sum over paths", "F.ctc_loss"],
            rows,
        )
    )
    prob_sum = sum(total.values())

    # repeats need blanks: [2, 2, 2] needs at least 5 frames, so 4 frames are infeasible
    too_short = torch_ctc([2, 2, 2], n_frames=4)
    just_enough = torch_ctc([2, 2, 2], n_frames=5)

    # greedy (best path) decoding vs the most probable label sequence (from the brute force)
    greedy = collapse(tuple(log_probs.argmax(-1).tolist()))
    best_labels = max(total, key=total.get)

    result.metrics = {
        "max_abs_difference": max(errors),
        "sum_over_all_label_sequences": prob_sum,
        "loss_222_in_4_frames": too_short,
        "loss_222_in_5_frames": just_enough,
        "greedy_decode": list(greedy),
        "most_probable_labels": list(best_labels),
        "p_greedy": total.get(greedy, 0.0),
        "p_most_probable": total[best_labels],
    }
    result.claim(
        "F.ctc_loss equals -log of the summed probability of every frame-level path that "
        "collapses to the target (enumerated by brute force), to float64 round-off.",
        max(errors) < 1e-9,
        f"max |difference| over {len(targets)} targets: {max(errors):.1e}",
    )
    result.notes.append(
        f"Every path collapses to exactly one label sequence, so the {len(total)} label "
        f"sequences' probabilities (the empty one included) sum to {prob_sum:.12f}: CTC is a "
        "proper distribution over label sequences of length <= T (true by construction, as "
        "each frame's softmax sums to 1)."
    )
    result.claim(
        "Repeated labels need a blank between them: [2, 2, 2] is impossible in 4 frames "
        "(infinite loss) and possible in 5.",
        math.isinf(too_short) and math.isfinite(just_enough),
        f"loss with 4 frames: {too_short}, with 5 frames: {just_enough:.4f}",
    )
    result.notes.append(
        f"Greedy decoding (argmax per frame, then collapse) gives {list(greedy)} with "
        f"p = {total.get(greedy, 0.0):.4f}; the most probable label sequence is "
        f"{list(best_labels)} with p = {total[best_labels]:.4f}. They can differ, because a "
        "label sequence's probability is summed over many paths: beam search with prefix "
        "merging approximates the latter."
    )
    return result
