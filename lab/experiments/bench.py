"""`lab bench`: speed as ratios measured in one process, so the machine's own speed cancels out.

- train: labgpt vs `transformers.LlamaForCausalLM` of the same shape on the same batches (goal >= 1.0)
- generate: our engine vs HF `generate` on the exported Llama of the same weights (goal >= 2 at batch 16),
  and vs HF generate on labgpt itself (GenerationMixin's, not labgpt's engine-backed override)
Timed blocks alternate between the two contenders so background load hits both alike.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import replace
from datetime import date
from importlib import metadata
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import GenerationMixin

import rewards.verifier as verifier
from evals.custom import load_rows
from lab.errors import LabError
from lab.model.engine import SamplingParams, generate
from lab.model.export import to_llama
from lab.model.labgpt import LabGPTForCausalLM
from lab.runs import cpu_info, package_versions
from lab.train.pretrain import autocast_dtype, cpu_has_native_bf16, model_config, peak_flops
from rewards import pool as workers
from tasks.math import MathConfig
from tasks.math import generate as generate_math


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


class _SavedBytes:
    """Bytes of tensors autograd saves for backward: the activation memory, the same measure on CPU and GPU."""

    def __init__(self):
        self.total = 0

    def __enter__(self):
        def pack(t):
            self.total += t.numel() * t.element_size()
            return t

        self.hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
        self.hooks.__enter__()
        return self

    def __exit__(self, *exc):
        self.hooks.__exit__(*exc)


def bench_train(preset, steps: int = 20, vocab_size: int | None = None, device: str = "auto") -> dict:
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    cfg = preset.pretrain
    vocab = vocab_size or preset.tokenizer.vocab_size
    torch.manual_seed(0)
    ours = LabGPTForCausalLM(model_config(preset.model, vocab)).to(dev).train()
    ours.config.use_cache = False
    llama = to_llama(ours).to(dev).train()
    llama.config.use_cache = False
    precision = autocast_dtype(cfg.dtype, dev)  # pretraining's precision, for both contenders
    autocast = torch.autocast(dev.type, dtype=precision) if precision else nullcontext()
    contenders = {"labgpt": ours, "llama": llama}
    optimizers = {k: torch.optim.AdamW(m.parameters(), lr=1e-4, fused=dev.type == "cuda") for k, m in contenders.items()}
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randint(0, vocab, (cfg.batch_size, cfg.seq_len + 1), generator=gen) for _ in range(4)]

    def loss_of(model, batch):
        with autocast:
            logits = model(input_ids=batch[:, :-1]).logits
        return F.cross_entropy(logits.float().view(-1, vocab), batch[:, 1:].reshape(-1))

    # The same treatment as pretraining: forward and loss compiled together on CUDA.
    losses = {k: functools.partial(loss_of, m) for k, m in contenders.items()}
    if cfg.compile and dev.type == "cuda":
        losses = {k: torch.compile(fn) for k, fn in losses.items()}

    def step(name, i, measure=None):
        batch = batches[i % len(batches)].to(dev)
        with measure or nullcontext():
            loss = losses[name](batch)
        loss.backward()
        optimizers[name].step()
        optimizers[name].zero_grad(set_to_none=True)

    memory = {}
    for name in contenders:  # warm-up (and compilation), then one measured step for memory
        for i in range(3):
            step(name, i)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        saved = _SavedBytes()
        step(name, 0, saved)
        _sync(dev)
        memory[name] = {"activation_mb": saved.total / 2**20}
        if dev.type == "cuda":
            memory[name]["peak_allocated_mb"] = torch.cuda.max_memory_allocated(dev) / 2**20
    elapsed = {name: 0.0 for name in contenders}
    block = 5
    for start in range(0, steps, block):
        for name in contenders:
            _sync(dev)
            t0 = time.perf_counter()
            for i in range(start, min(steps, start + block)):
                step(name, i)
            _sync(dev)
            elapsed[name] += time.perf_counter() - t0
    tokens = steps * cfg.batch_size * cfg.seq_len
    tps = {name: tokens / elapsed[name] for name in contenders}
    peak = peak_flops(cfg, dev)
    mfu = {name: ours.config.flops_per_token(cfg.seq_len) * v / peak for name, v in tps.items()} if peak else None
    return {"mfu": mfu, "precision": "bf16 autocast" if precision else "float32",
        "device": str(dev), "shape": preset.model.__dict__, "batch": cfg.batch_size, "seq_len": cfg.seq_len,
        "parameters": ours.config.num_parameters(), "tokens_per_s": tps, "ratio": tps["labgpt"] / tps["llama"],
        "memory": memory,
    }


@torch.no_grad()
def bench_generate(model=None, preset=None, batch: int = 16, prompt_len: int = 32,
                   new_tokens: int = 128, rounds: int = 3, device: str = "auto") -> dict:
    dev = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else ("cpu" if device == "auto" else device))
    if model is None:
        if preset is None:
            raise ValueError("bench_generate needs a model, or a preset to build a random one of its shape")
        torch.manual_seed(0)
        model = LabGPTForCausalLM(model_config(preset.model, preset.tokenizer.vocab_size))
    model = model.to(dev).eval()
    if dev.type == "cuda":
        model = model.to(torch.bfloat16)
    model.config.use_cache = True
    vocab = model.config.vocab_size
    gen = torch.Generator().manual_seed(0)
    prompts = [[1] + torch.randint(7, vocab, (prompt_len - 1,), generator=gen).tolist() for _ in range(batch)]
    ids = torch.tensor(prompts, device=dev)
    params = SamplingParams(max_new_tokens=new_tokens)  # greedy, no stop token: both produce every token
    # What a user would pick instead: HF generate on the same weights as transformers' own Llama (default
    # dynamic cache, sdpa). HF generate on labgpt itself stays beside it, labelled as such.
    llama = to_llama(model).to(dev, dtype=next(model.parameters()).dtype).eval()
    llama.config.use_cache = True

    def ours():
        return generate(model, prompts, params)

    def hf_generate(on):
        # GenerationMixin's own generate: labgpt's `generate` would hand this call to the engine
        return lambda: GenerationMixin.generate(on, ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                                min_new_tokens=new_tokens, do_sample=False, eos_token_id=None,
                                                pad_token_id=0)

    contenders = {"engine": ours, "hf_generate_llama": hf_generate(llama), "hf_generate_labgpt": hf_generate(model)}
    engine_tokens = ours()
    same = {name: engine_tokens == fn()[:, prompt_len:].tolist() for name, fn in contenders.items() if name != "engine"}
    elapsed = dict.fromkeys(contenders, 0.0)
    for _ in range(rounds):  # alternating blocks: the machine's own drift falls on every contender alike
        for name, fn in contenders.items():
            _sync(dev)
            t0 = time.perf_counter()
            fn()
            _sync(dev)
            elapsed[name] += time.perf_counter() - t0
    tps = {k: rounds * batch * new_tokens / v for k, v in elapsed.items()}
    return {"device": str(dev), "batch": batch, "prompt_len": prompt_len, "new_tokens": new_tokens,
            "tokens_per_s": tps, "ratio": tps["engine"] / tps["hf_generate_llama"],
            "ratio_vs_labgpt_hf": tps["engine"] / tps["hf_generate_labgpt"], "same_greedy_tokens": same}


# ---------------------------------------------------------------- one file of every figure, and the README's rows


def machine() -> dict:
    """What a figure was measured on: CPU model and cores, the GPU if any, and the versions that matter."""
    cpu = cpu_info("model name") or platform.processor() or platform.machine()
    versions = package_versions()
    return {"date": date.today().isoformat(), "cpu": cpu, "cores": len(os.sched_getaffinity(0)),
            "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "versions": {name: versions.get(name) for name in ("torch", "transformers", "trl")}}


def bench_all(preset, batches=(1, 16), train_steps: int = 60, rounds: int = 5, verify_checks: int = 2000,
              device: str = "auto") -> dict:
    """Every `lab bench` figure in one dict (what `lab bench all --out` writes and `perf_rows` renders); longer
    than the single benches' defaults, so the committed figures vary less."""
    trains = {"train": bench_train(preset, steps=train_steps, device=device)}
    if trains["train"]["precision"] == "float32" and cpu_has_native_bf16() and trains["train"]["device"] == "cpu":
        bf16 = replace(preset, pretrain=replace(preset.pretrain, dtype="bfloat16"))  # the opt-in, side by side
        trains["train_bf16"] = bench_train(bf16, steps=train_steps, device=device)
    return {"machine": machine(), "preset": preset.name, **trains,
            "generate": {str(b): bench_generate(preset=preset, batch=b, rounds=rounds, device=device) for b in batches},
            "verify": bench_verify(verify_checks)}


def _k(value: float) -> str:
    return f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"


def perf_rows(results: list[dict]) -> str:
    """The README's performance table, rendered from `bench_all` results (one per machine), never typed."""
    lines = ["| what | labgpt / ours | reference | ratio | goal |", "|---|---|---|---|---|"]
    for r in results:
        m = r["machine"]
        where = m["gpu"] or f"{m['cores']}-core CPU ({m['cpu']})"
        versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v)
        lines.append(f"| **{where}, {r['preset']} preset; {versions}; {m['date']}** | | | | |")
        for key in ("train", "train_bf16"):
            if key not in r:
                continue
            t = r[key]
            tps = t["tokens_per_s"]
            mfu = f", MFU {t['mfu']['labgpt']:.1%}" if t.get("mfu") else ""
            which = "pipeline default" if key == "train" else "opt-in, pretrain.dtype=bfloat16"
            lines.append(f"| training tokens/s vs `LlamaForCausalLM` of the same shape, batches and precision "
                         f"({t['parameters'] / 1e6:.1f}M params, {t['batch']}×{t['seq_len']}, {t['precision']}: {which}) "
                         f"| {_k(tps['labgpt'])} tok/s{mfu} | {_k(tps['llama'])} tok/s | {t['ratio']:.2f} | ≥ 1.0 |")
        for batch, g in r["generate"].items():
            same = "identical greedy tokens" if all(g["same_greedy_tokens"].values()) else "greedy tokens DIFFER"
            speed = g["tokens_per_s"]
            lines.append(f"| generation, batch {batch}, {g['prompt_len']}-token prompts, {g['new_tokens']} new tokens "
                         f"({same}): the engine vs HF `generate` on the exported Llama | {_k(speed['engine'])} tok/s "
                         f"| {_k(speed['hf_generate_llama'])} tok/s | {g['ratio']:.2f} | {'≥ 2' if batch == '16' else ''} |")
            lines.append(f"| the same, vs HF `generate` on labgpt itself | | {_k(speed['hf_generate_labgpt'])} tok/s "
                         f"| {g['ratio_vs_labgpt_hf']:.2f} | |")
        v = r.get("verify")
        if v:
            lines.append(f"| math verifier on one worker: worked solutions, a third wrong, hostile inputs "
                         f"({v['settled_in_process']:.0%} settled in-process; slowest check {v['slowest_s'] * 1000:.1f} ms) "
                         f"| {v['checks_per_s_per_core']:,.0f} checks/s | | | ≥ 1,000/s, none > 2 s |")
    return "\n".join(lines)


PERF_BEGIN, PERF_END = "<!-- perf-table: generated by `lab bench table` -->", "<!-- /perf-table -->"


def replace_perf_block(readme: str, table: str) -> str:
    """`readme` with the text between the perf-table markers replaced by `table`."""
    if PERF_BEGIN not in readme or PERF_END not in readme:
        raise ValueError(f"the README has no {PERF_BEGIN} ... {PERF_END} block to fill")
    head, rest = readme.split(PERF_BEGIN, 1)
    return head + PERF_BEGIN + "\n" + table + "\n" + PERF_END + rest.split(PERF_END, 1)[1]


# ---------------------------------------------------------------- verifier


def verify_mix(n: int, samples_path=None) -> list[tuple[str, str]]:
    """(response, gold) pairs like RL produces: the math suite's real responses when given, plus worked
    solutions from the generator, half ending "Answer: X" and half GSM8K-style "#### X", a third wrong."""
    pairs = []
    if samples_path is not None:
        rows = [json.loads(line) for line in Path(samples_path).read_text().splitlines() if line.strip()]
        pairs += [(r["response"], r["gold"]) for r in rows][: n // 2]
    problems = generate_math(MathConfig(seed=3, bands=(1, 2, 3, 4)), n - len(pairs))
    for i, p in enumerate(problems):
        body = p.solution.rsplit("Answer:", 1)[0]
        answer = p.answer if i % 3 else problems[i - 1].answer  # a wrong answer of the same kinds of form
        pairs.append((body + (f"#### {answer}" if i % 2 else f"Answer: {answer}"), p.answer))
    return pairs


HOSTILE = ["9**9**9**9", "10^10^10^10", "(" * 5000 + "1" + ")" * 5000, "__import__('os').system('echo hi')",
           "x" * 10_000, "\\frac{" * 200 + "1" + "}" * 200, "2^(2^(2^(2^(2^100))))",
           # LaTeX for the LaTeX parser: programs, deep nesting, exploding powers, 100k characters
           "\\def\\x{1}\\x", "\\input{/etc/passwd}", "\\left(" * 60 + "1" + "\\right)" * 60, "2^{10^{100}}",
           "\\begin{pmatrix}" * 30 + "1" + "\\end{pmatrix}" * 30, "$" + "\\sqrt{2}" * 12_500 + "$",
           # relations, solved over the reals, and \\pm sets
           "x^{999} + x^{998} < 1", "(x+1)^{999}(x-1)^{999} < (x^2-1)^{999}", "x < " * 200 + "1",
           "\\pm" * 200 + "1", "\\sin(" * 40 + "x" + ")" * 40 + " > 0"]


@contextlib.contextmanager
def one_worker():
    """The verifier's pool swapped for one of a single worker (speeds are per core), closed and restored after."""
    saved, workers.pool = workers.pool, workers.Pool(1)
    try:
        yield
    finally:
        workers.pool.close()
        workers.pool = saved


def bench_verify(n: int = 2000, samples_path=None, slowest_of: int = 300) -> dict:
    """Checks per second on one worker (one core), the share settled in-process, and the slowest single
    check among real answers and hostile strings (goals: >= 1,000 checks/s/core, none over 2 s)."""
    pairs = verify_mix(n, samples_path)
    with one_worker():
        verifier.verify_many(pairs[:2])  # start the worker outside the timed block
        t0 = time.perf_counter()
        verdicts = verifier.verify_many(pairs)
        seconds = time.perf_counter() - t0
        settled = [verifier.precheck(verifier.extract_answer(r), g, False) is not None for r, g in pairs]
        to_worker = [pair for pair, done in zip(pairs, settled) if not done]
        t0 = time.perf_counter()
        verifier.verify_many(to_worker)
        worker_seconds = time.perf_counter() - t0
        slowest, worst = 0.0, ""
        for response, gold in pairs[:slowest_of] + [(f"Answer: {h}", "1") for h in HOSTILE]:
            t = time.perf_counter()
            verifier.verify_response(response, gold)
            if time.perf_counter() - t > slowest:
                slowest, worst = time.perf_counter() - t, response[-60:]
    reasons: dict[str, int] = {}
    for v in verdicts:
        reasons[v.reason] = reasons.get(v.reason, 0) + 1
    return {"checks": len(pairs), "seconds": seconds, "checks_per_s_per_core": len(pairs) / seconds,
            "settled_in_process": sum(settled) / len(pairs),
            "sympy_checks_per_s_per_core": len(to_worker) / worker_seconds if to_worker else None,
            "reasons": reasons, "slowest_s": slowest,
            "slowest_input": worst}


# The same pairs through math-verify, in its own process: its parser falls back to sympy's parse_expr (an eval) on
# plain text, which the lab runs on no text in-process. One reply: each pair's verdict, and the seconds they took.
MATH_VERIFY_WORKER = """
import json, sys, time
from math_verify import parse, verify
pairs = json.load(sys.stdin)
parse(pairs[0][1]) if pairs else None  # imports and caches outside the timed block
t0, verdicts = time.perf_counter(), []
for prediction, gold in pairs:
    try:
        verdicts.append(bool(verify(parse(gold), parse(prediction))))
    except Exception:
        verdicts.append(False)
print(json.dumps({"verdicts": verdicts, "seconds": time.perf_counter() - t0}))
"""


def load_cases(path) -> list[dict]:
    """Labelled answer pairs, one JSON object a line (read by evals/custom.py's load_rows, as user suites and RL
    data are): prediction (a response or an answer), gold, equal (the label), and optionally id, rule and
    source (tests/fixtures/verifier_cases/ has the lab's, with sources)."""
    path = Path(path)
    if not path.is_file():
        raise LabError(f"no such cases file: {path}")
    cases = []
    for number, row in load_rows(path, numbered=True):
        if row is None:
            raise LabError(f"{path}:{number}: not JSON (one object a line)")
        if not isinstance(row.get("prediction"), str) or "gold" not in row or not isinstance(row.get("equal"), bool):
            raise LabError(f"{path}:{number}: a case needs prediction (text), gold and equal (true/false)")
        cases.append({"id": row.get("id", f"line {number}"), "rule": row.get("rule", ""), **row,
                      "gold": str(row["gold"])})
    if not cases:
        raise LabError(f"{path} holds no cases")
    return cases


def agreement(cases: list[dict], verdicts: list[bool], seconds: float) -> dict:
    """How often the verdicts match the labels: overall, on equal pairs, on not-equal pairs (negatives
    rejected), the speed, and the cases they get wrong."""
    right = [v == c["equal"] for c, v in zip(cases, verdicts)]
    share = lambda keep: (sum(r for r, c in zip(right, cases) if keep(c)) /  # noqa: E731
                          max(1, sum(1 for c in cases if keep(c))))
    return {"agreement": sum(right) / len(cases), "positives_accepted": share(lambda c: c["equal"]),
            "negatives_rejected": share(lambda c: not c["equal"]), "checks_per_s": len(cases) / seconds,
            "wrong": [c["id"] for c, r in zip(cases, right) if not r]}


def mix_cases(n: int) -> list[dict]:
    """verify_mix's generated GSM8K-style solutions as labelled cases: right unless given another problem's
    answer. The generator writes plain numbers, "38%" and "x = 1", so two answers are the same value exactly
    when they agree without the % and the "x = " (the verifier's rules for those forms)."""
    def value(answer: str) -> str:  # "x = 1" is 1 and "38%" is 38; a system "x = 0, y = 0" stays itself
        plain = answer.replace("%", "").replace(" ", "")
        return plain.split("=", 1)[1] if plain.count("=") == 1 and "," not in plain else plain

    golds = [p.answer for p in generate_math(MathConfig(seed=3, bands=(1, 2, 3, 4)), n)]
    return [{"id": f"mix-{i}", "rule": "gsm8k_style", "prediction": response, "gold": gold,
             "equal": i % 3 != 0 or value(golds[i - 1]) == value(gold)}
            for i, ((response, gold), gold) in enumerate(zip(verify_mix(n), golds))]


def bench_verify_cases(cases: list[dict]) -> dict:
    """The lab's verifier and, when installed, math-verify on the same labelled pairs in the same run: agreement
    with the labels (overall, equal pairs accepted, not-equal pairs rejected), checks/s, and the slowest check."""
    pairs = [(c["prediction"], c["gold"]) for c in cases]
    with one_worker():
        verifier.verify_many(pairs[:1])  # start the worker outside the timed block
        t0 = time.perf_counter()
        ours = [v.equivalent for v in verifier.verify_many(pairs)]
        result = {"cases": len(cases), "ours": agreement(cases, ours, time.perf_counter() - t0)}
        slowest = 0.0
        for pair in pairs:
            t = time.perf_counter()
            verifier.verify_many([pair])
            slowest = max(slowest, time.perf_counter() - t)
        result["ours"]["slowest_s"] = slowest
    if importlib.util.find_spec("math_verify") is None:
        result["math_verify"] = None
        return result
    done = subprocess.run([sys.executable, "-c", MATH_VERIFY_WORKER], input=json.dumps(pairs), capture_output=True,
                          text=True, timeout=1800)
    if done.returncode != 0:
        result["math_verify"] = {"error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
        return result
    reply = json.loads(done.stdout.strip().splitlines()[-1])
    result["math_verify"] = {**agreement(cases, reply["verdicts"], reply["seconds"]),
                             "version": metadata.version("math-verify")}
    return result
