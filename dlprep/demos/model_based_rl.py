"""Model-based vs model-free RL on random MDPs: planning in a learned model needs fewer samples.

What it shows (Sutton & Barto 2018, "Reinforcement Learning: An Introduction", ch. 8;
certainty-equivalence planning vs Q-learning):

- Random tabular MDPs (20 states, 4 actions, each action leading to one of 3 random next
  states; noisy rewards; gamma = 0.9), many in parallel. Both agents see the same stream of
  transitions (s, a, r, s'), with (s, a) drawn uniformly (a "generative model" of the
  environment, so exploration is not the issue; sample use is).
- Model-free: tabular Q-learning, one update per transition (two step-size schedules: a
  constant 0.1 and 1 / n(s, a)^0.8).
- Model-based: count the transitions into an estimated model P_hat(s'|s,a), R_hat(s,a),
  then plan in it with value iteration (certainty equivalence). Every transition updates a
  reusable model, and planning propagates it through all states at no extra sample cost.
- Measured: the true value (exact, from the real model) of each agent's greedy policy, as a
  fraction of the way from the uniform-random policy to the optimal policy, after 1, 2, 5,
  10, 25 samples per state-action pair. With 5 to 25 samples per pair, the model-based
  agent's policy is better on the same data; Q-learning needs about 2x the transitions to
  catch up. (With 50 per pair both are near optimal and the gap narrows.)
- Model error: the planner also predicts the value of its own plan inside its model. With
  little data that prediction is too optimistic on average: value iteration picks the
  actions whose estimated rewards and transitions happened to look good, exactly where the
  model is wrong (the optimiser's curse, the tabular cousin of a policy exploiting a learned
  model). The gap shrinks as the model improves. With 1 sample per pair (often 2) the model is so
  wrong that planning in it has no consistent edge over Q-learning: the sample-efficiency
  advantage needs a roughly right model.

What really happens:
- In the tabular case, Q-learning that replays all stored transitions until convergence
  reaches the same answer as planning in the count-based model: a replay buffer is a
  non-parametric model. The difference in the demo is how much each transition is used,
  once (online Q-learning) or to convergence (planning).
- With function approximation, the model's errors are no longer just sampling noise; they
  compound over long imagined rollouts, which is why practical methods (MBPO, Dreamer,
  PETS) use short rollouts, ensembles or re-planning.

Run: dlprep demo model-based-rl
"""

from __future__ import annotations

import torch

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True

S, A, BRANCH = 20, 4, 3
GAMMA = 0.9
REWARD_NOISE = 0.5


def random_mdps(R: int, g: torch.Generator):
    """R random MDPs: P (R, S, A, S) with BRANCH successors per (s, a), mean rewards (R, S, A)."""
    P = torch.zeros(R, S, A, S)
    succ = torch.rand(R, S, A, S, generator=g).argsort(dim=-1)[..., :BRANCH]  # 3 successors
    probs = -torch.log(torch.rand(R, S, A, BRANCH, generator=g))  # Dirichlet(1) via Exp(1)
    P.scatter_(3, succ, probs / probs.sum(-1, keepdim=True))
    mean_r = torch.rand(R, S, A, generator=g)
    return P, mean_r


def value_iteration(P, r, iters: int) -> torch.Tensor:
    """Q (R, S, A) of the model (P (R, S, A, S), r (R, S, A)): iterate the Bellman optimality
    operator Q <- r + gamma P max_a' Q."""
    Q = torch.zeros_like(r)
    for _ in range(iters):
        v = Q.max(dim=2).values  # (R, S)
        Q = r + GAMMA * (P @ v[:, None, :, None])[..., 0]  # (R, S, A, S) @ (R, 1, S, 1)
    return Q


def policy_value(P, r, pi) -> torch.Tensor:
    """Exact V^pi (R, S) for a stochastic policy pi (R, S, A): solve (I - gamma P_pi) V = r_pi."""
    P_pi = (pi[..., None] * P).sum(2)  # (R, S, S)
    r_pi = (pi * r).sum(2)  # (R, S)
    eye = torch.eye(S, dtype=P.dtype, device=P.device)
    return torch.linalg.solve(eye - GAMMA * P_pi, r_pi[..., None])[..., 0]


def greedy(Q) -> torch.Tensor:
    return torch.nn.functional.one_hot(Q.argmax(dim=2), A).to(Q.dtype)  # (R, S, A)


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    R = ctx.pick(32, 128)
    P, mean_r = (t.to(device) for t in random_mdps(R, g))
    vi_iters = 150  # gamma^150 ~ 1e-7

    # reference points: optimal policy and uniform-random policy (start state uniform)
    q_star = value_iteration(P, mean_r, vi_iters)
    v_star = policy_value(P, mean_r, greedy(q_star)).mean(1)  # (R,)
    v_rand = policy_value(P, mean_r, torch.full_like(mean_r, 1.0 / A)).mean(1)

    def normalised(pi) -> torch.Tensor:  # 0 = random policy, 1 = optimal; (R,)
        return (policy_value(P, mean_r, pi).mean(1) - v_rand) / (v_star - v_rand)

    # ---- one stream of transitions shared by both agents ------------------------------------
    per_pair = ctx.pick([1, 2, 5, 10, 25], [1, 2, 5, 10, 25, 50])
    n_total = per_pair[-1] * S * A
    s = torch.randint(0, S, (R, n_total), generator=g).to(device)
    a = torch.randint(0, A, (R, n_total), generator=g).to(device)
    u = torch.rand(R, n_total, 1, generator=g).to(device)
    rows = torch.arange(R, device=device)[:, None]
    cdf = P[rows, s, a].cumsum(-1)  # (R, n, S)
    s_next = (u > cdf).sum(-1).clamp(max=S - 1)  # sample s' ~ P(.|s, a)
    reward = mean_r[rows, s, a] + REWARD_NOISE * torch.randn(R, n_total, generator=g).to(device)

    # ---- model-based: counts -> estimated model -> value iteration --------------------------
    checkpoints = [k * S * A for k in per_pair]
    mb_score, mb_predicted, mb_true_value = [], [], []
    for n in checkpoints:
        flat = (s[:, :n] * A + a[:, :n]) * S + s_next[:, :n]  # index of (s, a, s')
        counts = torch.zeros(R, S * A * S, device=device)
        counts.scatter_add_(1, flat, torch.ones_like(flat, dtype=counts.dtype))
        counts = counts.view(R, S, A, S)
        n_sa = counts.sum(-1)  # (R, S, A)
        reward_sum = torch.zeros(R, S * A, device=device)
        reward_sum.scatter_add_(1, s[:, :n] * A + a[:, :n], reward[:, :n])
        seen = n_sa > 0
        # unseen pairs: the model knows nothing; assume a self-loop with reward 0
        P_hat = torch.where(
            seen[..., None],
            counts / n_sa.clamp(min=1)[..., None],
            torch.eye(S, device=device)[None, :, None, :].expand(R, S, A, S),
        )
        r_hat = reward_sum.view(R, S, A) / n_sa.clamp(min=1)
        Q_hat = value_iteration(P_hat, r_hat, vi_iters)
        pi = greedy(Q_hat)
        mb_score.append(normalised(pi))
        # the planner's own prediction of its plan's value vs the plan's true value
        mb_predicted.append(policy_value(P_hat, r_hat, pi).mean(1))
        mb_true_value.append(policy_value(P, mean_r, pi).mean(1))

    # ---- model-free: Q-learning, one update per transition ----------------------------------
    qf_scores = {}
    for name in ("Q-learning, step 0.1", "Q-learning, step 1/n^0.8"):
        Q = torch.zeros(R, S, A, device=device)
        visits = torch.zeros(R, S, A, device=device)
        scores, r_idx = [], torch.arange(R, device=device)
        for t in range(n_total):
            st, at, nt = s[:, t], a[:, t], s_next[:, t]
            visits[r_idx, st, at] += 1
            step = 0.1 if "0.1" in name else visits[r_idx, st, at] ** -0.8
            target = reward[:, t] + GAMMA * Q[r_idx, nt].max(dim=1).values
            Q[r_idx, st, at] += step * (target - Q[r_idx, st, at])
            if t + 1 in checkpoints:
                scores.append(normalised(greedy(Q)))
        qf_scores[name] = scores

    result.tables.append(
        Table(
            f"Greedy policy quality (0 = uniform random, 1 = optimal), mean over {R} random "
            f"MDPs ({S} states, {A} actions, gamma {GAMMA})",
            ["samples per (s, a)", "total transitions", "model-based (plan in learned model)"]
            + list(qf_scores),
            [
                [k, k * S * A, f"{mb_score[i].mean().item():.3f}"]
                + [f"{qf_scores[name][i].mean().item():.3f}" for name in qf_scores]
                for i, k in enumerate(per_pair)
            ],
        )
    )
    result.curves.append(
        Curve(
            "Greedy policy quality vs samples per (s, a)",
            "samples per (s, a): " + ", ".join(map(str, per_pair)),
            {
                "model-based": [x.mean().item() for x in mb_score],
                **{name: [x.mean().item() for x in sc] for name, sc in qf_scores.items()},
            },
        )
    )
    gaps = [(p - t).mean().item() for p, t in zip(mb_predicted, mb_true_value, strict=True)]
    rel_gaps = [
        ((p - t) / t.abs()).mean().item() for p, t in zip(mb_predicted, mb_true_value, strict=True)
    ]
    result.tables.append(
        Table(
            "Model error: the planner's predicted value of its own plan vs the plan's true value",
            ["samples per (s, a)", "predicted (in the model)", "true", "overestimate"],
            [
                [
                    k,
                    f"{mb_predicted[i].mean().item():.3f}",
                    f"{mb_true_value[i].mean().item():.3f}",
                    f"{rel_gaps[i]:+.1%}",
                ]
                for i, k in enumerate(per_pair)
            ],
        )
    )

    # ---- claims -------------------------------------------------------------------------------
    # the better Q-learning schedule on average, at each data size
    qf_mean = [max(sc[i].mean().item() for sc in qf_scores.values()) for i in range(len(per_pair))]
    mb_mean = [x.mean().item() for x in mb_score]
    from5 = [per_pair.index(k) for k in (5, 10, 25)]  # (with 50 both are near optimal)
    margin = min(mb_mean[i] - qf_mean[i] for i in from5)
    result.claim(
        "With 5 to 25 samples per (s, a), planning in the learned model gives a better policy "
        "than the better Q-learning schedule on the same transitions (by at least 0.03 of the "
        "random-to-optimal gap at each of these data sizes).",
        margin > 0.03,
        ", ".join(f"{per_pair[i]}/pair: {mb_mean[i]:.3f} vs {qf_mean[i]:.3f}" for i in from5),
    )
    # how much data Q-learning needs to match the model-based agent at 10 per pair
    target = mb_mean[per_pair.index(10)]
    needed = None
    if qf_mean[0] >= target:
        needed = per_pair[0]  # Q-learning already matches it with the least data
    for i in range(1, len(per_pair)):
        lo, hi = qf_mean[i - 1], qf_mean[i]
        if needed is None and lo < target <= hi:  # interpolate on a log scale of the data size
            frac = (target - lo) / (hi - lo)
            needed = per_pair[i - 1] * (per_pair[i] / per_pair[i - 1]) ** frac
    ratio = needed / 10 if needed is not None else per_pair[-1] / 10  # a lower bound if never
    result.claim(
        "Q-learning needs more than 1.5x the transitions to match the policy the model-based "
        "agent gets from 10 samples per (s, a).",
        ratio > 1.5,
        f"model-based at 10/pair: {target:.3f}; Q-learning reaches it at "
        + (f"~{needed:.1f}/pair ({ratio:.1f}x)" if needed else f"> {per_pair[-1]}/pair"),
    )
    i25 = per_pair.index(25)
    result.claim(
        "Model error gets exploited: with 1 sample per (s, a) the planner's prediction of its "
        "own plan's value is more than 30% too optimistic; with 25 per pair, less than 10%.",
        rel_gaps[0] > 0.3 and rel_gaps[i25] < 0.1,
        "overestimate: "
        + ", ".join(f"{k}/pair {gp:+.1%}" for k, gp in zip(per_pair, rel_gaps, strict=True)),
    )
    result.notes.append(
        "With 1 sample per (s, a) the model-based agent has no consistent edge over Q-learning "
        f"({mb_mean[0]:.3f} vs {qf_mean[0]:.3f} here; across seeds either can be ahead), and at "
        f"2 per pair it varies with the seed ({mb_mean[1]:.3f} vs {qf_mean[1]:.3f} here): a "
        "model built from one noisy sample per pair is badly wrong, and the planner optimises "
        "against exactly those errors. The advantage appears once the model is roughly right."
    )
    result.metrics = {
        "samples_per_pair": per_pair,
        "model_based_quality": [x.mean().item() for x in mb_score],
        **{f"{n}_quality": [x.mean().item() for x in sc] for n, sc in qf_scores.items()},
        "model_value_overestimate": gaps,
        "model_value_overestimate_relative": rel_gaps,
    }
    return result
