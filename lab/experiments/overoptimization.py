"""Reward over-optimization (Gao et al. 2022) at lab scale: how far can the policy chase the proxy RM
before the gold judge stops agreeing?

Two ways to put optimisation pressure on the proxy, each measured by the KL it moves the policy away
from sft-idk (d = sqrt(KL), Gao et al.'s x axis):

  best-of-n   sample 64 answers per prompt from sft-idk once, keep the one the proxy likes best among n;
              KL = log n - (n-1)/n exactly, and the expected gold of the proxy's pick among n of the 64
              is computed without resampling (the order-statistics estimator Gao et al. use).
  RL          lab/train/rlhf.py runs; proxy and gold as TRL logged them every step, KL from the same rows.

Gao et al.'s functional forms, fitted by least squares to the gold gain over sft-idk:
  best-of-n   gold(d) = d (alpha - beta d)        peak at d* = alpha / (2 beta)
  RL          gold(d) = d (alpha - beta log d)    peak at d* = exp(alpha / beta - 1)
A fitted peak says where more pressure starts to hurt; it is only evidence of over-optimization when it
lies inside the measured range and the measured gold actually falls after it.

Two mitigations at matched compute (same steps, samples and prompts as the main RL arm): a stronger or
weaker KL penalty, and a conservative ensemble reward (mean - k * std of three RMs trained on the same
comparisons with different seeds, Coste et al. 2023).

Best-of-n asks about SFT people in the RM's test split (never in its training comparisons; never
held-out people, who stay unseen by every stage), so the proxy is scored off its training data.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from lab.errors import LabError
from lab.experiments.settings import OveroptimizationSettings
from lab.model.loading import load_model_and_tokenizer
from lab.model.tokenizer import load_tokenizer
from lab.runs import Run, read_json, read_train_log, write_json
from lab.settings import from_settings
from lab.stage_names import RM, SFT_IDK
from lab.train.reward_model import fit as fit_reward_model
from lab.train.reward_model import tokenize_pairs
from lab.train.reward_model_settings import RewardModelSettings
from lab.train.rl_settings import RLHFSettings
from lab.train.rlhf import rlhf
from rewards import preferences  # sampled through the module: a test swaps sample_responses to see a rerun reuse
from rewards.gold import gold_score, prompt_for
from rewards.preferences import load_preferences, split_of
from rewards.proxy import check_tokenizers_match, load_reward_model, make_reward_fn, score
from tasks.world import seeded_rng

OUT = "experiments/overoptimization"


def bon_kl(n: int) -> float:
    """KL(best-of-n || base) in nats, the analytic value Gao et al. use."""
    return math.log(n) - (n - 1) / n


def best_of_n(proxy: list[float], gold: list[float], n: int) -> tuple[float, float]:
    """Expected (proxy, gold) of the proxy's favourite among n of these samples drawn without replacement.

    With the samples sorted by proxy, the i-th lowest (0-based) is the favourite of a random n-subset with
    probability C(i, n-1) / C(N, n): exact, no resampling noise, and every sample is used."""
    N = len(proxy)
    if not 1 <= n <= N:
        raise LabError(f"best-of-{n} needs at least {n} samples, got {N}")
    order = sorted(range(N), key=lambda i: proxy[i])
    total = math.comb(N, n)
    weights = [math.comb(rank, n - 1) / total for rank in range(N)]
    return (sum(w * proxy[i] for w, i in zip(weights, order)), sum(w * gold[i] for w, i in zip(weights, order)))


def bon_curve(proxy: list[list[float]], gold: list[list[float]], ns) -> list[dict]:
    """One row per n: mean over prompts of the best-of-n proxy and gold, with the analytic KL."""
    rows = []
    for n in ns:
        picks = [best_of_n(p, g, n) for p, g in zip(proxy, gold)]
        kl = bon_kl(n)
        rows.append({"n": n, "kl": kl, "sqrt_kl": math.sqrt(kl), "proxy": sum(p for p, _ in picks) / len(picks),
                     "gold": sum(g for _, g in picks) / len(picks)})
    return rows


def _lstsq(columns: list[list[float]], y: list[float]) -> list[float]:
    coef, *_ = np.linalg.lstsq(np.array(columns, dtype=float).T, np.array(y, dtype=float), rcond=None)
    return [float(c) for c in coef]


def fit_bon(d: list[float], gain: list[float]) -> dict:
    """gain = d (alpha - beta d) by least squares (linear in alpha, beta); peak d* = alpha / (2 beta)."""
    if len(d) < 2:
        raise LabError(f"fitting needs at least 2 points, got {len(d)}")
    alpha, beta = _lstsq([d, [-x * x for x in d]], gain)
    peak = alpha / (2 * beta) if beta > 0 and alpha > 0 else None  # beta <= 0: no turn-over in this form
    return {"form": "d*(alpha - beta*d)", "alpha": alpha, "beta": beta, "d_peak": peak,
            "kl_peak": peak * peak if peak is not None else None}


def fit_rl(d: list[float], gain: list[float]) -> dict:
    """gain = d (alpha - beta log d); peak where alpha - beta (log d + 1) = 0, i.e. d* = exp(alpha/beta - 1)."""
    if len(d) < 2:
        raise LabError(f"fitting needs at least 2 points, got {len(d)}")
    alpha, beta = _lstsq([d, [-x * math.log(x) if x > 0 else 0.0 for x in d]], gain)
    peak = None
    if beta > 0 and alpha / beta - 1 < 50:  # beta <= 0 (or tiny): still rising, no peak in this form
        peak = math.exp(alpha / beta - 1)
    return {"form": "d*(alpha - beta*log d)", "alpha": alpha, "beta": beta, "d_peak": peak,
            "kl_peak": peak * peak if peak is not None else None}


def predict(fit: dict, d: float) -> float:
    if fit["form"].startswith("d*(alpha - beta*d)"):
        return d * (fit["alpha"] - fit["beta"] * d)
    return d * (fit["alpha"] - fit["beta"] * math.log(d)) if d > 0 else 0.0


def ensemble_reward_fn(reward_fns, k: float = 1.0, name: str = "proxy"):
    """A TRL reward function: mean - k * (population) std of several reward functions' scores.

    Where the RMs disagree the answer is off their shared data, exactly where a single RM is easiest to
    exploit; subtracting the spread makes those answers unattractive."""

    def reward(prompts, completions, **kwargs):
        scores = [fn(prompts, completions, **kwargs) for fn in reward_fns]
        out = []
        for column in zip(*scores):
            mean = sum(column) / len(column)
            std = math.sqrt(sum((s - mean) ** 2 for s in column) / len(column))
            out.append(mean - k * std)
        return out

    reward.__name__ = name
    return reward


def bon_people(world, rm_settings: dict, count: int, seed: int = 0) -> list[str]:
    """SFT people in the RM's test split (rewards/preferences.split_of), in a seeded order."""
    names = [p.name for p in world.sft_people()
             if split_of(p.name, rm_settings.get("heldout_share", 0.2), rm_settings.get("seed", 0)) == "test"]
    seeded_rng("overoptimization-bon", seed).shuffle(names)
    if not names:
        raise LabError("no SFT person is in the reward model's test split (rm.heldout_share is 0?)")
    return names[:count]


def sample_bon(run: Run, world, settings: OveroptimizationSettings, source: str, rm_stage: str, out: Path) -> dict:
    """The best-of-n samples, scored by proxy and gold; kept in out/bon_samples.json so a rerun reuses them."""
    path = out / "bon_samples.json"
    key = {"source": source, "rm_stage": rm_stage, "prompts": settings.bon_prompts, "samples": settings.bon_samples,
           "temperature": settings.temperature, "max_new_tokens": settings.max_new_tokens, "seed": settings.seed}
    if path.exists():
        stored = read_json(path)
        if stored["key"] == key:
            return stored
    rm_dir = run.require(rm_stage)
    names = bon_people(world, read_json(rm_dir / "summary.json").get("settings", {}) if (rm_dir / "summary.json").exists()
                       else {}, settings.bon_prompts, settings.seed)
    policy, tokenizer = load_model_and_tokenizer(run.require(source))
    rm, rm_tokenizer = load_reward_model(rm_dir)
    check_tokenizers_match(rm_tokenizer, tokenizer)
    prompts = [prompt_for(name, i) for i, name in enumerate(names)]
    t0 = time.perf_counter()
    sampled = preferences.sample_responses(policy, tokenizer, prompts, settings.bon_samples, settings.temperature,
                               settings.max_new_tokens, seed=settings.seed)
    seconds = time.perf_counter() - t0
    rows = []
    for name, prompt, answers in zip(names, prompts, sampled):
        texts = [t for t, _ in answers]
        proxy = score(rm, rm_tokenizer, [prompt] * len(texts), texts)
        gold = [gold_score(world, name, t, finished=f).total for t, f in answers]
        rows.append({"person": name, "prompt": prompt, "texts": texts, "proxy": proxy, "gold": gold})
    result = {"key": key, "rows": rows, "sampling_seconds": seconds}
    write_json(path, result)
    return result


def train_ensemble(run: Run, rm: RewardModelSettings, settings: OveroptimizationSettings, source: str, rm_stage: str,
                   out: Path):
    """Reward functions of RMs trained like the rm stage on its comparisons, one per seed (cached in out/)."""
    rm_dir = run.require(rm_stage)
    policy_tokenizer = load_tokenizer(run.require(source))
    data = load_preferences(rm_dir / "preferences")
    base = rm
    if (rm_dir / "summary.json").exists():  # train as the rm stage really trained (overrides included)
        base = from_settings(RewardModelSettings, read_json(rm_dir / "summary.json")["settings"])
    fns = []
    for seed in settings.ensemble_seeds:
        # the rm stage is the member with its own seed: one RM fewer to train (~100 s each on tiny)
        path = rm_dir if seed == base.seed else out / f"rm-seed{seed}"
        member = str(path.relative_to(run.root))
        if not run.is_complete(member):
            torch.manual_seed(seed)  # the new head's initialisation
            model, tokenizer = load_reward_model(run.require(source))
            train, _ = tokenize_pairs(data["train"], tokenizer, base.max_length)
            trainer, _ = fit_reward_model(model, tokenizer, train, replace(base, seed=seed), path / "trainer", save=False)
            trainer.model.save_pretrained(path)
            tokenizer.save_pretrained(path)
            run.mark_complete(member, {"seed": seed, "steps": trainer.state.global_step})
        model, tokenizer = load_reward_model(path)
        fns.append(make_reward_fn(model, tokenizer, policy_tokenizer=policy_tokenizer, name=f"rm{seed}"))
    return fns


def rl_points(logs: list[dict], smooth: int = 1) -> list[dict]:
    """(step, sqrt_kl, proxy, gold) per logged step, moving-averaged over `smooth` steps (16 samples a step)."""
    rows = [r for r in logs if "proxy" in r and r.get("kl_seq") is not None]
    out = []
    for i, r in enumerate(rows):
        window = rows[max(0, i - smooth + 1) : i + 1]
        mean = {k: sum(w[k] for w in window) / len(window) for k in ("kl_seq", "proxy", "gold")}
        out.append({"step": r["step"], "kl": mean["kl_seq"], "sqrt_kl": math.sqrt(max(mean["kl_seq"], 0.0)),
                    "proxy": mean["proxy"], "gold": mean["gold"]})
    return out


def _arm(context, settings: RLHFSettings, stage: str, source: str, rm_stage: str, proxy=None) -> dict:
    run = context.run
    if not run.is_complete(stage):
        rlhf(settings, context.at(stage, source), rm_stage=rm_stage, proxy=proxy)
    logs = read_train_log(run.stage_dir(stage))
    return {"stage": stage, "summary": read_json(run.stage_dir(stage) / "summary.json"), "logs": logs}


def _plots(out: Path, bon: list[dict], bon_fit: dict, arms: dict, rl_fit: dict, base_gold: float) -> list[str]:
    import matplotlib  # lazy: matplotlib is slow to import, and only the plots need it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    d = [r["sqrt_kl"] for r in bon]
    ax[0].plot(d, [r["gold"] for r in bon], "o-", label="gold")
    ax[0].plot(d, [r["proxy"] for r in bon], "s--", label="proxy (RM)")
    grid = [max(d) * i / 50 for i in range(51)]
    ax[0].plot(grid, [base_gold + predict(bon_fit, x) for x in grid], ":", label="gold fit d(a - b d)")
    for r in bon:
        ax[0].annotate(f"n={r['n']}", (r["sqrt_kl"], r["gold"]), fontsize=7)
    ax[0].set(title="best-of-n", xlabel="sqrt(KL) (nats^0.5)", ylabel="reward")
    ax[0].legend(fontsize=8)
    for name, arm in arms.items():
        pts = arm["points"]
        line, = ax[1].plot([p["sqrt_kl"] for p in pts], [p["gold"] for p in pts], "-", label=f"{name} gold")
        ax[1].plot([p["sqrt_kl"] for p in pts], [p["proxy"] for p in pts], "--", color=line.get_color(), alpha=0.5)
    ax[1].set(title="RL (solid: gold, dashed: proxy)", xlabel="sqrt(KL) (nats^0.5)", ylabel="reward")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "overoptimization.png", dpi=120)
    plt.close(fig)
    return ["overoptimization.png"]


def _verdict(points: list[dict], fit: dict, what: str, noise: float = 0.0) -> str:
    """Honest: over-optimization is seen only if gold peaks inside the range and then falls by more than twice
    the points' standard error (`noise`): the best of many noisy points sits above the truth by chance."""
    golds = [p["gold"] for p in points]
    ds = [p["sqrt_kl"] for p in points]
    best = max(range(len(golds)), key=lambda i: golds[i])
    fell = golds[best] - golds[-1]
    inside = fit["d_peak"] is not None and fit["d_peak"] < max(ds)
    if inside and best < len(golds) - 1 and fell > max(0.02, 2 * noise):
        return (f"{what}: gold peaks at sqrt(KL) = {ds[best]:.2f} (fitted d* = {fit['d_peak']:.2f}) and falls by "
                f"{fell:.3f} after it: over-optimization is visible.")
    return (f"{what}: gold does not clearly peak and fall in the measured range (max sqrt(KL) {max(ds):.2f}; "
            f"fitted d* = {fit['d_peak'] if fit['d_peak'] is None else round(fit['d_peak'], 2)}; "
            f"gold at the end is {fell:.3f} below its best; a point's standard error is about {noise:.3f}).")


NEEDS = (SFT_IDK, "rm")  # the policy and the reward model it is optimised against; the pipeline provides them


def check_overoptimization_settings(settings: OveroptimizationSettings) -> None:
    if max(settings.ns) > settings.bon_samples:
        raise LabError(f"best-of-{max(settings.ns)} needs bon_samples >= {max(settings.ns)}, got {settings.bon_samples}")


def run_overoptimization(settings: OveroptimizationSettings, context, rm: RewardModelSettings,
                         rm_stage: str = RM) -> dict:
    """Best-of-n and RL against the proxy, with the gold judge watching; writes experiments/overoptimization/.
    `rm`: the run's reward-model settings, for the ensemble's members when the rm stage recorded none."""
    run, source = context.run, context.source or SFT_IDK
    check_overoptimization_settings(settings)
    run.require(source)
    run.require(rm_stage)
    out = run.open_stage(OUT)
    timings = {}

    t0 = time.perf_counter()
    samples = sample_bon(run, context.world, settings, source, rm_stage, out)
    proxy = [r["proxy"] for r in samples["rows"]]
    gold = [r["gold"] for r in samples["rows"]]
    bon = bon_curve(proxy, gold, settings.ns)
    base_gold = bon[0]["gold"] if bon[0]["n"] == 1 else best_of_n(proxy[0], gold[0], 1)[1]
    bon_fit = fit_bon([r["sqrt_kl"] for r in bon], [r["gold"] - base_gold for r in bon])
    bon_proxy_fit = fit_bon([r["sqrt_kl"] for r in bon], [r["proxy"] - bon[0]["proxy"] for r in bon])
    timings["best_of_n"] = time.perf_counter() - t0

    arms = {}
    t0 = time.perf_counter()
    for beta in sorted({settings.rl.beta, *settings.betas}, key=lambda b: b != settings.rl.beta):
        arms[f"beta={beta:g}"] = _arm(context, replace(settings.rl, beta=beta), f"{OUT}/rl-beta{beta:g}", source,
                                      rm_stage)
    timings["rl_beta_sweep"] = time.perf_counter() - t0
    if settings.ensemble_seeds:
        t0 = time.perf_counter()
        fns = train_ensemble(run, rm, settings, source, rm_stage, out)
        timings["ensemble_rms"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        arms["ensemble"] = _arm(context, settings.rl, f"{OUT}/rl-ensemble", source, rm_stage,
                                proxy=ensemble_reward_fn(fns, settings.ensemble_k))
        timings["rl_ensemble"] = time.perf_counter() - t0

    main = f"beta={settings.rl.beta:g}"
    for arm in arms.values():
        arm["points"] = rl_points(arm["logs"], settings.smooth)
        start = arm["points"][0]["gold"] if arm["points"] else 0.0
        arm["fit"] = fit_rl([p["sqrt_kl"] for p in arm["points"]], [p["gold"] - start for p in arm["points"]]) \
            if len(arm["points"]) >= 2 else None
    rl_fit = arms[main]["fit"]
    plots = _plots(out, bon, bon_fit, arms, rl_fit, base_gold)

    verdicts = [_verdict(bon, bon_fit, "best-of-n")]
    if arms[main]["points"]:
        stds = [r["rewards/gold/std"] for r in arms[main]["logs"] if "rewards/gold/std" in r]
        noise = sum(stds) / len(stds) / math.sqrt(settings.rl.batch_size * settings.smooth) if stds else 0.0
        verdicts.append(_verdict(arms[main]["points"], rl_fit, f"RL ({main})", noise))
    results = {
        "best_of_n": bon, "best_of_n_fit": bon_fit, "best_of_n_proxy_fit": bon_proxy_fit,
        "best_of_n_prompts": len(proxy), "best_of_n_samples": settings.bon_samples,
        "rl": {name: {"stage": a["stage"], "points": a["points"], "fit": a["fit"],
                      **{k: a["summary"].get(k) for k in ("proxy_first", "proxy_last", "gold_first", "gold_last",
                                                          "kl_seq_last", "length_first", "length_last", "steps",
                                                          "seconds")}}
               for name, a in arms.items()},
        "verdicts": verdicts, "timings": timings, "plots": plots, "settings": asdict(settings),
    }
    write_json(out / "results.json", results)
    (out / "table.md").write_text(_table(results, main))
    return results


def _f(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _table(results: dict, main: str) -> str:
    lines = ["# Reward over-optimization", "",
             (f"Best-of-n on {results['best_of_n_prompts']} prompts about SFT people outside the RM's training "
              f"comparisons, {results['best_of_n_samples']} samples each from sft-idk; KL = log n - (n-1)/n."), "",
             "| n | KL | sqrt(KL) | proxy | gold |", "|---|---|---|---|---|"]
    for r in results["best_of_n"]:
        lines.append(f"| {r['n']} | {_f(r['kl'])} | {_f(r['sqrt_kl'])} | {_f(r['proxy'])} | {_f(r['gold'])} |")
    fit = results["best_of_n_fit"]
    lines += ["", (f"Best-of-n gold gain fit d(alpha - beta d): alpha = {_f(fit['alpha'])}, "
                   f"beta = {_f(fit['beta'])}, d* = {_f(fit['d_peak'], 2)}."), "",
              "RL arms (same steps, samples and prompts; KL estimated per answer = TRL's per-token KL x mean length):",
              "", "| arm | steps | proxy first -> last | gold first -> last | KL last | length | alpha | beta | d* |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, a in results["rl"].items():
        fit = a["fit"] or {"alpha": None, "beta": None, "d_peak": None}
        lines.append(f"| {name} | {a['steps']} | {_f(a['proxy_first'])} -> {_f(a['proxy_last'])} | "
                     f"{_f(a['gold_first'])} -> {_f(a['gold_last'])} | {_f(a['kl_seq_last'])} | "
                     f"{_f(a['length_first'], 1)} -> {_f(a['length_last'], 1)} | {_f(fit['alpha'])} | "
                     f"{_f(fit['beta'])} | {_f(fit['d_peak'], 2)} |")
    lines += ["", "## Outcome", ""] + [f"- {v}" for v in results["verdicts"]]
    lines += ["", ("Gao et al. see gold turn down at KL of several nats, after thousands of RL steps with RMs of "
                   "millions to billions of parameters. Where no clear peak shows here, the measurement is too coarse "
                   "to show one: each RL point is 16 samples whose gold scores move in steps of 0.2-0.25, and TRL's "
                   "per-token KL estimate is noisy. Seeing the turn-over would take more samples per point (larger "
                   "batches, or scoring checkpoints on a fixed prompt set), longer runs, more best-of-n prompts and "
                   "n of 10^3-10^4 (KL up to ~8 nats)."), "",
              "Timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in results["timings"].items()), ""]
    return "\n".join(lines)
