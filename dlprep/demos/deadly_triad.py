"""Deadly triad on Baird's counterexample: off-policy linear TD diverges; drop a leg, it converges.

What it shows (Sutton & Barto 2018, "Reinforcement Learning: An Introduction", 2nd ed.,
section 11.2 and Figure 11.1; Baird 1995):

- Baird's counterexample: 7 states, linear values with 8 weights (states 1-6:
  v = 2 w_i + w_8; state 7: v = w_7 + 2 w_8), all rewards 0, gamma = 0.99, so the true value
  of every state is 0 and w = 0 represents it exactly. The behaviour policy goes to a uniformly
  random state (next state uniform over all 7); the target policy always goes to state 7.
- All three legs of the triad at once (linear function approximation + bootstrapping +
  off-policy updates): semi-gradient TD(0) diverges. With exact expected updates under the
  behaviour's uniform state distribution (semi-gradient DP, no sampling noise at all) the
  values grow exponentially; the sampled version with importance ratios rho = pi/b (7 or 0)
  blows up too, in every run. The reason is linear algebra: the expected update
  w <- w + alpha Phi^T D (gamma P_pi Phi w - Phi w) has an iteration matrix with an
  eigenvalue above 1 (on the values; the demo computes it), because raising w_8 to fit state
  7's target raises the other states' values, and off-policy weighting never "pays" for it.
- Remove one leg at a time, same step size, same start:
  * on-policy (target policy = behaviour policy, same features, same bootstrapping, same
    uniform state distribution): converges (Tsitsiklis & Van Roy 1997);
  * tabular (one weight per state, still off-policy and bootstrapped): converges;
  * no bootstrapping (regress onto the true returns, Monte Carlo): converges.
- A target network (bootstrap from a copy of w refreshed every C steps, as in DQN): copied
  every 10 steps it still diverges; frozen for 100 or 500 steps the growth factor drops
  below 1 and the values stay bounded. With C = 100 they first rise several-fold (the map is
  not normal: transient growth before the decay), and they come down only slowly.

What really happens (and what the textbook story leaves out):
- The target network fixes Baird's example for a specific reason: its 8 features can
  represent every value function on 7 states, so fitting a frozen target long enough is
  (nearly) exact value iteration, a gamma-contraction. Too-frequent copies behave like no
  target network at all. With features that cannot represent the targets, a target network
  alone is no guarantee; Zhang, Yao & Whiteson (2021, "Breaking the Deadly Triad with a Target
  Network") add ridge regularisation (and projections) to prove convergence.
- Tabular TD converges but slowly here: with gamma = 0.99 its contraction per expected step
  is only 1 - alpha (1 - gamma) / 7, so after the run its values have not reached 0 yet;
  what matters is that they never grow.

Run: dlprep demo deadly-triad
"""

from __future__ import annotations

import torch

from dlprep.demos._core import Curve, DemoContext, DemoResult, Table

STATISTICAL = True  # only the sampled-TD runs depend on the seed

GAMMA = 0.99
ALPHA = 0.01
N_STATES = 7


def baird_features() -> torch.Tensor:
    """(7, 8) feature matrix of Baird's counterexample (Sutton & Barto, Figure 11.1)."""
    phi = torch.zeros(N_STATES, 8, dtype=torch.float64)
    for i in range(6):
        phi[i, i] = 2.0  # upper states: v = 2 w_i + w_8
        phi[i, 7] = 1.0
    phi[6, 6] = 1.0  # lower state: v = w_7 + 2 w_8
    phi[6, 7] = 2.0
    return phi


def expected_td(phi, P, w0, steps, target_every=None, bootstrap=True):
    """Semi-gradient DP: the expected TD(0) update under the uniform state distribution.

    w <- w + alpha * sum_s d(s) (target(s) - v(s)) grad v(s), with
    target = gamma * (P v_target)(s) (bootstrapped; v_target from a copy refreshed every
    `target_every` steps if given) or the true return 0 (Monte Carlo).
    Returns the curve of max_s |v(s)| after each step (true values are all 0).
    """
    d = torch.full((N_STATES,), 1.0 / N_STATES, dtype=phi.dtype, device=phi.device)
    w, w_target = w0.clone(), w0.clone()
    curve = []
    for t in range(steps):
        if target_every is not None and t % target_every == 0:
            w_target = w.clone()  # refresh the target network
        source = w_target if target_every is not None else w
        if bootstrap:
            target = GAMMA * (P @ (phi @ source))  # (7,) expected bootstrapped target
        else:
            target = torch.zeros(N_STATES, dtype=phi.dtype, device=phi.device)  # true returns
        w = w + ALPHA * phi.T @ (d * (target - phi @ w))
        curve.append((phi @ w).abs().max().item())
    return curve


def growth_per_step(phi, P, target_every=1, bootstrap=True) -> float:
    """Spectral radius, per step, of the linear map the expected update applies to the values.

    > 1: the values grow exponentially from almost any start; < 1: they converge to 0.
    (Computed on the CPU in float64: an 8x8 problem.)
    """
    phi, P = phi.cpu(), P.cpu()
    n_w = phi.shape[1]
    eye = torch.eye(n_w, dtype=phi.dtype)
    d = torch.full((N_STATES,), 1.0 / N_STATES, dtype=phi.dtype)
    fit = eye - ALPHA * phi.T @ (d[:, None] * phi)  # what one step does to w on its own
    pull = ALPHA * GAMMA * phi.T @ (d[:, None] * (P @ phi)) if bootstrap else 0 * eye
    # C steps towards a frozen target: w_C = fit^C w_0 + sum_{j<C} fit^j pull w_0
    phase, power = torch.zeros_like(eye), eye.clone()
    for _ in range(target_every):
        phase += power
        power = power @ fit
    phase_map = power + phase @ pull  # (8, 8) on the weights
    value_map = phi @ phase_map @ torch.linalg.pinv(phi)  # (7, 7) on the values
    radius = torch.linalg.eigvals(value_map).abs().max().item()
    return radius ** (1.0 / target_every)


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    result = DemoResult()
    phi = baird_features().to(device)  # (7, 8)
    w0 = torch.tensor([1, 1, 1, 1, 1, 1, 10, 1], dtype=torch.float64, device=device)
    P_target = torch.zeros(N_STATES, N_STATES, dtype=torch.float64, device=device)
    P_target[:, 6] = 1.0  # target policy: always to state 7
    P_behaviour = torch.full_like(P_target, 1.0 / N_STATES)  # behaviour: uniform next state
    tabular = torch.eye(N_STATES, dtype=torch.float64, device=device)
    v0_tab = phi @ w0  # the tabular run starts from the same values
    start = (phi @ w0).abs().max().item()  # 12

    steps = ctx.pick(1000, 5000)
    runs = {  # name -> (curve, growth factor per step)
        "off-policy linear TD (all three)": (
            expected_td(phi, P_target, w0, steps),
            growth_per_step(phi, P_target),
        ),
        "on-policy linear TD": (
            expected_td(phi, P_behaviour, w0, steps),
            growth_per_step(phi, P_behaviour),
        ),
        "tabular off-policy TD": (
            expected_td(tabular, P_target, v0_tab, steps),
            growth_per_step(tabular, P_target),
        ),
        "Monte Carlo (no bootstrap)": (
            expected_td(phi, P_target, w0, steps, bootstrap=False),
            growth_per_step(phi, P_target, bootstrap=False),
        ),
    }
    for every in (10, 100, 500):
        runs[f"off-policy + target net, C={every}"] = (
            expected_td(phi, P_target, w0, steps, target_every=every),
            growth_per_step(phi, P_target, target_every=every),
        )

    result.tables.append(
        Table(
            f"Baird's counterexample, expected (noise-free) semi-gradient updates, alpha={ALPHA}, "
            f"gamma={GAMMA}; true values all 0, start max|v| = {start:.0f}",
            [
                "update",
                f"max|v| after {steps} steps",
                "peak max|v|",
                "growth factor per step",
            ],
            [
                [name, f"{c[-1]:.3g}", f"{max(c):.3g}", f"{rho:.6f}"]
                for name, (c, rho) in runs.items()
            ],
        )
    )
    every = max(1, steps // 50)
    result.curves.append(
        Curve(
            "max |v(s)| (true value 0) under expected updates",
            "step",
            {name: c[::every] for name, (c, _) in runs.items() if "C=500" not in name},
            log_y=True,
        )
    )

    # ---- sampled off-policy TD(0) with importance sampling, R runs in parallel --------------
    R = ctx.pick(20, 100)
    sample_steps = ctx.pick(1000, 5000)
    w = w0.repeat(R, 1)  # (R, 8)
    for _ in range(sample_steps):
        s = torch.randint(0, N_STATES, (R,), generator=g).to(device)  # uniform state visits
        solid = (torch.rand(R, generator=g) < 1.0 / N_STATES).to(device)  # behaviour's action
        rho = solid.to(torch.float64) * N_STATES  # pi/b: 1/(1/7) for "solid", 0 for "dashed"
        v_s = (phi[s] * w).sum(dim=1)  # (R,)
        v_next = w @ phi[6]  # (R,) state 7's value: the next state when rho > 0
        td_error = 0.0 + GAMMA * v_next - v_s  # reward 0 + gamma v(s') - v(s)
        w = w + ALPHA * (rho * td_error)[:, None] * phi[s]
    sampled = (w @ phi.T).abs().max(dim=1).values  # (R,) max |v| per run
    result.tables.append(
        Table(
            f"Sampled off-policy TD(0) with importance ratios, {R} runs x {sample_steps} steps",
            ["statistic", "max|v| at the end"],
            [
                ["smallest run", f"{sampled.min().item():.3g}"],
                ["median run", f"{sampled.median().item():.3g}"],
                ["start", f"{start:.3g}"],
            ],
        )
    )

    off_c, off_rho = runs["off-policy linear TD (all three)"]
    on_c, on_rho = runs["on-policy linear TD"]
    tab_c, tab_rho = runs["tabular off-policy TD"]
    mc_c, mc_rho = runs["Monte Carlo (no bootstrap)"]
    c10, rho10 = runs["off-policy + target net, C=10"]
    c100, rho100 = runs["off-policy + target net, C=100"]
    c500, rho500 = runs["off-policy + target net, C=500"]
    result.claim(
        "With all three legs (linear features, bootstrapping, off-policy updates) TD diverges "
        "even with exact expected updates: the values, whose true value is 0, grow more than "
        "10x, and the update's growth factor on the values is above 1.",
        off_c[-1] > 10 * start and off_rho > 1.0,
        f"max|v| {start:.0f} -> {off_c[-1]:.3g}; growth factor {off_rho:.5f} per step",
    )
    result.claim(
        "Sampled off-policy TD(0) with importance ratios diverges too: in every run the "
        "values end more than 10x above where they started.",
        sampled.min().item() > 10 * start,
        f"smallest final max|v| over {R} runs = {sampled.min().item():.3g} (start {start:.0f})",
    )
    result.claim(
        "Make it on-policy (same features, same bootstrapped target, same state distribution) "
        "and it converges: the values shrink, growth factor below 1.",
        on_c[-1] < 0.5 * start and on_rho < 1.0,
        f"max|v| {start:.0f} -> {on_c[-1]:.3g}; growth factor {on_rho:.5f}",
    )
    result.claim(
        "Drop the function approximation (tabular, still off-policy and bootstrapped) and the "
        "values never exceed where they started (a contraction, growth factor below 1).",
        max(tab_c) <= start + 1e-9 and tab_rho < 1.0,
        f"peak max|v| {max(tab_c):.3g} (start {start:.0f}); growth factor {tab_rho:.6f}",
    )
    result.claim(
        "Drop the bootstrapping (regress onto the true returns) and it converges.",
        mc_c[-1] < 0.1 * start and mc_rho < 1.0,
        f"max|v| {start:.0f} -> {mc_c[-1]:.3g}; growth factor {mc_rho:.5f}",
    )
    result.claim(
        "A target network refreshed every 10 steps does not help (still diverges); frozen for "
        "100 or 500 steps, the growth factor drops below 1 and the values stay bounded (after "
        "a transient rise), because Baird's features can fit any frozen target.",
        c10[-1] > 10 * start and rho10 > 1.0 and rho100 < 1.0 and rho500 < 1.0
        and max(c100) < 10 * start and max(c500) < 2 * start,
        f"C=10: max|v| -> {c10[-1]:.3g} (growth {rho10:.5f}); C=100: peak {max(c100):.3g}, "
        f"end {c100[-1]:.3g} (growth {rho100:.6f}); C=500: peak {max(c500):.3g}, end "
        f"{c500[-1]:.3g} (growth {rho500:.6f})",
    )  # fmt: skip
    result.notes.append(
        "The growth factor is the spectral radius of the expected update's linear map on the "
        "values (per step; for a target network, per C-step phase to the power 1/C). "
        "Off-policy linear TD's is only slightly above 1, yet that compounds to exponential "
        "divergence; tabular TD's is 1 - alpha (1 - gamma) / 7, barely below 1, which is why "
        "its values have not reached 0 by the end of the run although they never grow."
    )
    result.metrics = {
        "start_max_abs_value": start,
        **{f"final_max_abs_value[{n}]": c[-1] for n, (c, _) in runs.items()},
        **{f"growth_per_step[{n}]": rho for n, (_, rho) in runs.items()},
        "sampled_td_min_final_max_abs_value": sampled.min().item(),
        "sampled_td_median_final_max_abs_value": sampled.median().item(),
    }
    return result
