"""RLHF's objective and DPO on a toy "LLM": a policy over a few responses per prompt.

What it shows, measured. Each of 16 prompts has 8 candidate responses with a hidden true
reward r(x, y); a reference policy pi_ref (the SFT model) puts arbitrary probabilities on them.
Human preferences are simulated with the Bradley-Terry model, P(y1 > y2) = sigmoid(r1 - r2),
on pairs of responses sampled from pi_ref, as in the InstructGPT / DPO data pipeline.

- RLHF maximises E_pi[r] - beta KL(pi || pi_ref). Its exact optimum is
  pi*(y|x) = pi_ref(y|x) exp(r(x,y) / beta) / Z(x) (computed here in closed form): it scores
  higher on that objective than pi_ref and than the reward-greedy policy, which has the highest
  reward but pays a large KL. The KL term is what stops a policy from collapsing onto whatever
  the reward model rates highest (reward hacking, when the reward model is wrong).
- DPO (Rafailov et al. 2023, arXiv 2305.18290) trains the policy directly on the preference
  pairs with -log sigmoid(beta [log pi/pi_ref (y_w) - log pi/pi_ref (y_l)]), no reward model
  and no sampling. Measured: the implicit reward beta log(pi/pi_ref) recovers the ordering of
  the hidden true reward, the expected true reward rises above pi_ref's, and the DPO policy
  moves towards the closed-form optimum pi* (closer than pi_ref is, but not onto it).
- beta sets how far the policy moves: a smaller beta gives a larger KL from pi_ref.
- What really happens with finite data: DPO only fits reward *differences* between responses
  that were compared; a response that is rarely sampled from pi_ref gets a poorly determined
  probability (reported: the chosen responses' log-probability can even fall in training).

Run: dlprep demo preference-optimization
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dlprep.demos._core import DemoContext, DemoResult, Table

STATISTICAL = True

PROMPTS, RESPONSES = 16, 8


def kl(p_log: torch.Tensor, q_log: torch.Tensor) -> torch.Tensor:
    """Mean over prompts of KL(p || q) from log-probabilities (P, K)."""
    return (p_log.exp() * (p_log - q_log)).sum(-1).mean()


def objective(logp, reward, ref_log, beta) -> float:
    """RLHF objective E_pi[r] - beta KL(pi || pi_ref), averaged over prompts."""
    return ((logp.exp() * reward).sum(-1).mean() - beta * kl(logp, ref_log)).item()


def train_dpo(ref_log, x, yw, yl, beta, steps, lr=0.05):
    logits = ref_log.clone().requires_grad_(True)  # the policy starts as the reference
    opt = torch.optim.Adam([logits], lr=lr)
    for _ in range(steps):
        logp = torch.log_softmax(logits, -1)
        margin = beta * ((logp - ref_log)[x, yw] - (logp - ref_log)[x, yl])
        loss = -F.logsigmoid(margin).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return torch.log_softmax(logits.detach(), -1)


def run(ctx: DemoContext) -> DemoResult:
    device = torch.device(ctx.device)
    g = torch.Generator().manual_seed(ctx.seed)
    reward = torch.randn(PROMPTS, RESPONSES, generator=g).to(device)  # hidden true reward
    ref_log = torch.log_softmax(torch.randn(PROMPTS, RESPONSES, generator=g), -1).to(device)
    n_pairs, steps = ctx.pick((4000, 300), (20000, 1000))

    # preference data: two responses from pi_ref, labelled by Bradley-Terry on the true reward
    x = torch.randint(0, PROMPTS, (n_pairs,), generator=g).to(device)
    probs = ref_log.exp()[x].cpu()
    y1 = torch.multinomial(probs, 1, generator=g).squeeze(1).to(device)
    y2 = torch.multinomial(probs, 1, generator=g).squeeze(1).to(device)
    keep = y1 != y2
    x, y1, y2 = x[keep], y1[keep], y2[keep]
    p_first = torch.sigmoid(reward[x, y1] - reward[x, y2])
    first_wins = torch.rand(x.shape[0], generator=g).to(device) < p_first
    yw, yl = torch.where(first_wins, y1, y2), torch.where(first_wins, y2, y1)

    rows, stats = [], {}
    for beta in (0.5, 2.0):
        optimum = torch.log_softmax(ref_log + reward / beta, -1)  # pi* of the RLHF objective
        greedy = torch.full_like(ref_log, -30.0)
        greedy.scatter_(1, reward.argmax(1, keepdim=True), 0.0)
        greedy = torch.log_softmax(greedy, -1)  # all mass on the highest-reward response
        dpo = train_dpo(ref_log, x, yw, yl, beta, steps)
        implicit = beta * (dpo - ref_log)  # DPO's implicit reward, up to a per-prompt constant
        centred = implicit - implicit.mean(1, keepdim=True)
        true_c = reward - reward.mean(1, keepdim=True)
        corr = torch.corrcoef(torch.stack([centred.flatten(), true_c.flatten()]))[0, 1].item()
        stats[beta] = {
            "objective": {
                name: objective(lp, reward, ref_log, beta)
                for name, lp in (("pi_ref", ref_log), ("greedy", greedy), ("pi*", optimum),
                                 ("DPO", dpo))
            },  # fmt: skip
            "reward": {name: (lp.exp() * reward).sum(-1).mean().item()
                       for name, lp in (("pi_ref", ref_log), ("pi*", optimum), ("DPO", dpo))},
            "kl_to_ref": {"pi*": kl(optimum, ref_log).item(), "DPO": kl(dpo, ref_log).item()},
            "kl_to_optimum": {"pi_ref": kl(optimum, ref_log).item(),
                              "DPO": kl(optimum, dpo).item()},
            "implicit_reward_corr": corr,
            "chosen_logp_change": (dpo - ref_log)[x, yw].mean().item(),
        }  # fmt: skip
        s = stats[beta]
        s["reward"]["greedy"] = reward.max(1).values.mean().item()
        for name in ("pi_ref", "greedy", "pi*", "DPO"):
            rows.append([beta, name, f"{s['reward'][name]:.3f}", f"{s['objective'][name]:.3f}"])

    result = DemoResult(metrics={"per_beta": {str(b): v for b, v in stats.items()},
                                 "pairs": int(x.shape[0])})  # fmt: skip
    result.tables.append(
        Table(
            f"{PROMPTS} prompts x {RESPONSES} responses, {int(x.shape[0])} preference pairs",
            ["beta", "policy", "E[true reward]", "E[r] - beta KL(pi || pi_ref)"],
            rows,
        )
    )
    s = stats[0.5]
    o = s["objective"]
    result.claim(
        "The closed-form optimum pi_ref exp(r/beta)/Z beats both pi_ref and the reward-greedy "
        "policy on the KL-regularised RLHF objective (greedy has more reward but pays in KL).",
        o["pi*"] > o["pi_ref"] and o["pi*"] > o["greedy"],
        f"beta 0.5: pi* {o['pi*']:.3f}, pi_ref {o['pi_ref']:.3f}, greedy {o['greedy']:.3f}",
    )
    result.claim(
        "DPO, trained only on preference pairs, recovers the hidden reward's ordering "
        "(correlation of beta log(pi/pi_ref) with the true reward > 0.7) and raises the "
        "expected true reward above pi_ref's.",
        all(v["implicit_reward_corr"] > 0.7 and v["reward"]["DPO"] > v["reward"]["pi_ref"] + 0.2
            for v in stats.values()),
        "; ".join(f"beta {b}: corr {v['implicit_reward_corr']:.3f}, reward pi_ref "
                  f"{v['reward']['pi_ref']:.3f} -> DPO {v['reward']['DPO']:.3f}"
                  for b, v in stats.items()),
    )  # fmt: skip
    result.claim(
        "The DPO policy moves towards the RLHF optimum pi*: its KL from pi* is below 0.8x "
        "pi_ref's (finite, pi_ref-sampled pairs keep it from landing exactly on pi*).",
        all(v["kl_to_optimum"]["DPO"] < 0.8 * v["kl_to_optimum"]["pi_ref"] for v in stats.values()),
        "; ".join(f"beta {b}: KL(pi* || DPO) {v['kl_to_optimum']['DPO']:.3f} vs KL(pi* || pi_ref) "
                  f"{v['kl_to_optimum']['pi_ref']:.3f}" for b, v in stats.items()),
    )  # fmt: skip
    result.claim(
        "beta controls how far the policy moves: beta = 0.5 ends further from pi_ref (larger KL) "
        "than beta = 2.",
        stats[0.5]["kl_to_ref"]["DPO"] > stats[2.0]["kl_to_ref"]["DPO"],
        f"KL(DPO || pi_ref): beta 0.5 {stats[0.5]['kl_to_ref']['DPO']:.3f}, beta 2 "
        f"{stats[2.0]['kl_to_ref']['DPO']:.3f}",
    )
    result.notes.append(
        "Mean change in log-probability of the chosen responses in the data: "
        + ", ".join(f"beta {b}: {v['chosen_logp_change']:+.3f}" for b, v in stats.items())
        + " (DPO optimises the margin over the rejected response, not the chosen likelihood)."
    )
    return result
