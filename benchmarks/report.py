"""Turn measurements into results.md (markdown tables + the issue-6 targets) and results.png.

Speeds are given as time per step (µs) and as the hand-written in-place loop's time divided by
the contender's (so > 1 means faster than that loop; it is the "hand-written in-place loop" of
issues 2 and 6).  The hand-optimised loop (the compiler's tricks applied by hand) is a contender
row, shown as a floor without a target.  A contender whose final state differs from the in-place
loop's by more than the tolerance is flagged "DISAGREES" and left out of the ranking (and out
of the targets).
"""
from __future__ import annotations

import math
import os
import statistics

from .contenders import (HandC, HandCScipyBlas, HandOptimised, HandWritten, ModelcModule, ModelcNetwork,
                         ModelcNumba, ModelcNumbaSequential, ModelcNumbaThreads, ModelcSequential, RectiPy)

MiB = 1024.0 * 1024.0


def _f(x, fmt="{:.3g}", none="—"):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return none
    return fmt.format(x)


def _us(x):
    if x is None:
        return "—"
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _row(res, name):
    for r in res["rows"]:
        if r["name"] == name:
            return r
    return {}


def _paired_ratio(res, a, b):
    """Median over the timed rounds of a's time / b's time in the same round (None if unmeasured)."""
    ra, rb = (_row(res or {"rows": []}, n) for n in (a, b))
    if not (_ok(ra) and _ok(rb) and ra.get("times_s") and len(ra["times_s"]) == len(rb.get("times_s", ()))):
        return None
    return statistics.median(x / y for x, y in zip(ra["times_s"], rb["times_s"]))


def _ok(r):
    return r.get("status") == "ok" and "us_per_step" in r and r.get("agree", True)


def workload_table(results: list[dict]) -> list[str]:
    out = ["| workload | contender | µs/step | (best) | speed vs hand-written in-place | rank | "
           "setup s | peak MiB (allowed) | max abs diff vs in-place | status |",
           "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for res in results:
        wl = res["workload"]
        if wl["family"] == "sweep":
            continue
        hand = _row(res, HandWritten.name).get("us_per_step")
        ranked = sorted((r for r in res["rows"] if _ok(r)), key=lambda r: r["us_per_step"])
        rank = {r["name"]: i + 1 for i, r in enumerate(ranked)}
        for r in res["rows"]:
            us = r.get("us_per_step")
            speed = hand / us if (hand and us) else None
            status = r.get("status", "")
            if status == "ok" and r.get("agree") is False:
                status = "**DISAGREES** (not ranked)"
            peak = r.get("peak_bytes")
            mem = (f"{peak / MiB:.1f} ({r['budget_bytes'] / MiB:.1f})" if peak is not None else "—")
            out.append(f"| {wl['name']} | {r['name']} | {_us(us)} | {_us(r.get('best_us_per_step'))} | "
                       f"{_f(speed, '{:.2f}×')} | "
                       f"{rank.get(r['name'], '—')} | {_f(r.get('setup_s'), '{:.3f}')} | {mem} | "
                       f"{_f(r.get('max_abs_diff'), '{:.1e}')} | {status} |")
    return out


def sweep_table(results: list[dict]) -> list[str]:
    out = ["| workload | contender | ms per run | unit-steps/s | vs modelc one-at-a-time | "
           "vs numba one-at-a-time | max abs diff vs in-place | status |", "|---|---|---:|---:|---:|---:|---:|---|"]
    any_row = False
    for res in results:
        wl = res["workload"]
        if wl["family"] != "sweep":
            continue
        seq = _row(res, ModelcSequential.name).get("unit_steps_per_s")
        seq_numba = _row(res, ModelcNumbaSequential.name).get("unit_steps_per_s")
        for r in res["rows"]:
            any_row = True
            tput = r.get("unit_steps_per_s")
            status = r.get("status", "")
            if status == "ok" and r.get("agree") is False:
                status = "**DISAGREES**"
            out.append(f"| {wl['name']} (B={wl['B']}, N={wl['N']}, {wl['steps']} steps) | {r['name']} | "
                       f"{_f(r.get('median_s') and r['median_s'] * 1e3, '{:.1f}')} | "
                       f"{_f(tput, '{:.3g}')} | {_f(tput / seq if (tput and seq) else None, '{:.2f}×')} | "
                       f"{_f(tput / seq_numba if (tput and seq_numba) else None, '{:.2f}×')} | "
                       f"{_f(r.get('max_abs_diff'), '{:.1e}')} | {status} |")
    return out if any_row else []


def compile_table(comp: dict) -> list[str]:
    if not comp:
        return []
    out = ["| what | N | cold (empty cache) s | of which add_diffeq_node s | cache hit s | "
           "`import numba` s (on hit) | cache hit + `import numba` s | `import modelc` s | "
           "sympy/lark imported on hit |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for item in comp.get("items", []):
        cold, hit = item["cold"], item["hit"]
        imp = hit.get("imported") or {}
        mods = ", ".join(m for m in ("sympy", "lark") if imp.get(m)) or ("no" if imp else "—")
        err = cold.get("error") or hit.get("error")
        out.append(f"| {item['label']} | {item.get('N') or '—'} | "
                   f"{_f(cold.get('compile_s'), '{:.3f}', err and 'error' or '—')} | "
                   f"{_f(cold.get('add_s'), '{:.3f}')} | "
                   f"{_f(hit.get('compile_s'), '{:.4f}', err and 'error' or '—')} | "
                   f"{_f(hit.get('numba_import_s'), '{:.3f}')} | {_f(_with_numba_import(hit), '{:.3f}')} | "
                   f"{_f(hit.get('import_s'), '{:.3f}')} | {mods} |")
        if err:
            out.append(f"| ↳ error | | {err} | | | | | | |")
    return out


def _with_numba_import(run: dict) -> float | None:
    """A numba figure with numba's own import added back (the child times the two apart)."""
    if run.get("compile_s") is None or run.get("numba_import_s") is None:
        return None
    return run["compile_s"] + run["numba_import_s"]


def scaling_table(sc: dict) -> list[str]:
    if not sc or not sc.get("populations"):
        return []
    out = ["| populations P (n=10 each, P-1 edges) | cold add+compile s | per population ms | "
           "cache hit s |", "|---:|---:|---:|---:|"]
    for item in sc["populations"]:
        cold, hit = item["cold"], item["hit"]
        c = cold.get("compile_s")
        out.append(f"| {item['P']} | {_f(c, '{:.3f}', 'error')} | "
                   f"{_f(c and c / item['P'] * 1e3, '{:.1f}')} | {_f(hit.get('compile_s'), '{:.3f}', 'error')} |")
        if cold.get("error"):
            out.append(f"| ↳ | {cold['error']} | | |")
    return out


# ----------------------------------------------------------------------------- targets

class TargetTable:
    """A markdown table of targets, each with its measured figure and verdict (met, missed, or
    — where there is no target), and the µs per step of a contender on a workload."""

    def __init__(self, results: list[dict], title: str):
        self.by = {r["workload"]["name"]: r for r in results}
        self.lines = [f"| {title} | measured | verdict |", "|---|---|---|"]

    def add(self, target, measured, ok) -> None:
        verdict = "—" if ok is None else ("**met**" if ok else "**missed**")
        self.lines.append(f"| {target} | {measured} | {verdict} |")

    def us(self, wname: str, cname: str):
        r = _row(self.by.get(wname, {"rows": []}), cname)
        return r.get("us_per_step") if _ok(r) else None


def targets(results: list[dict], comp: dict, sc: dict) -> list[str]:
    table = TargetTable(results, "target (issue 6, plus issues 2 and 3)")
    by, lines, add, t = table.by, table.lines, table.add, table.us

    hand, opt, net, mod, rp = (t("seed-euler-N100", c) for c in
                               (HandWritten.name, HandOptimised.name, ModelcNetwork.name,
                                ModelcModule.name, RectiPy.name))
    if hand and net:
        add("seed N=100: Network.run ≥ 1.2× faster than the hand-written in-place loop",
            f"{hand:.2f} / {net:.2f} µs = {hand / net:.2f}×", hand / net >= 1.2)
    else:
        add("seed N=100: Network.run ≥ 1.2× faster than the hand-written in-place loop",
            "not measured", None)
    if hand and mod:
        add("seed N=100: generated module ≥ 1.2× faster than the hand-written in-place loop "
            "(issue 2)", f"{hand:.2f} / {mod:.2f} µs = {hand / mod:.2f}×", hand / mod >= 1.2)
    else:
        add("seed N=100: generated module ≥ 1.2× faster than the hand-written in-place loop "
            "(issue 2)", "not measured", None)
    if opt and (net or mod):
        parts = [f"{n} {opt:.2f} / {x:.2f} µs = {opt / x:.2f}×"
                 for n, x in (("Network.run", net), ("module.run", mod)) if x]
        add("(no target) seed N=100: modelc against the hand-optimised loop (the compiler's "
            "tricks by hand; > 1 is faster)", "; ".join(parts), None)
    if rp and net:
        add("seed N=100: Network.run ≥ 10× faster than RectiPy (issue 3: ≥ 5×)",
            f"{rp:.1f} / {net:.2f} µs = {rp / net:.1f}×", rp / net >= 10)
    else:
        add("seed N=100: Network.run ≥ 10× faster than RectiPy", "not measured (RectiPy or Network missing)", None)
    overhead = _paired_ratio(by.get("seed-euler-N100"), ModelcNetwork.name, ModelcModule.name)
    if overhead:
        # the two do the same work but for Network's per-call bookkeeping: compare them round by
        # round (they ran back to back), so that a slow spell of the machine cancels out
        add("seed N=100: Network.run ≤ 5 % over module.run (issue 3; median of the per-round ratios)",
            f"{overhead - 1:+.1%}", overhead <= 1.05)
    for N in (1000, 4000):
        for m in ("euler", "rk4"):
            h, n = t(f"seed-{m}-N{N}", HandWritten.name), t(f"seed-{m}-N{N}", ModelcNetwork.name)
            label = f"seed N={N} {m}: Network.run within 5 % of the hand-written in-place loop"
            if h and n:
                add(label, f"{n:.0f} vs {h:.0f} µs ({n / h - 1:+.1%})", n / h <= 1.05)
            else:
                add(label, "not measured", None)
    items = {(i["label"], i.get("N")): i for i in (comp or {}).get("items", [])}
    cm = items.get(("compile_model(seed, euler)", None)) or {}
    c, h = cm.get("cold", {}).get("compile_s"), cm.get("hit", {}).get("compile_s")
    add("cold compile of the seed model < 0.5 s", _f(c, "{:.3f} s", "not measured"), None if c is None else c < 0.5)
    add("cache hit < 50 ms", "not measured" if h is None else f"{h * 1e3:.1f} ms",
        None if h is None else h < 0.05)
    nets = [items.get(("Network(seed) add+compile", N)) for N in (100, 1000, 4000)]
    # best of the repeats: compile work is deterministic, the spread between runs is other processes
    colds = [i and min(i["cold"].get("all_compile_s") or [i["cold"].get("compile_s")]) for i in nets]
    hits = [i and min(i["hit"].get("all_compile_s") or [i["hit"].get("compile_s")]) for i in nets]
    if all(colds) and all(hits):
        flat = (max(colds) - min(colds) <= 0.25 * min(colds) + 0.02 and
                max(hits) - min(hits) <= 0.25 * min(hits) + 0.02)
        add("cold compile and cache hit flat in N (Network add+compile, N = 100, 1000, 4000; best of 3)",
            "cold " + " / ".join(f"{x:.3f}" for x in colds) + " s; hit " +
            " / ".join(f"{x * 1e3:.0f}" for x in hits) + " ms", flat)
    else:
        add("compile flat in N", "not measured", None)
    pops = (sc or {}).get("populations") or []
    pc = [(p["P"], p["cold"].get("compile_s")) for p in pops]
    if len(pc) >= 3 and all(c for _, c in pc):
        # linear: the cost of each added population must not grow with P (marginal cost of the
        # last interval at most 1.5x that of the one before, with 10 ms of slack for noise)
        (pa, ca), (pb, cb), (pc_, cc) = pc[-3:]
        m1, m2 = (cb - ca) / (pb - pa), (cc - cb) / (pc_ - pb)
        add("compile grows at most linearly with the populations",
            ", ".join(f"P={p}: {c:.2f} s" for p, c in pc) +
            f"; marginal {m1 * 1e3:.0f} then {m2 * 1e3:.0f} ms per population",
            m2 <= 1.5 * max(m1, 0.0) + 0.01)
    else:
        add("compile grows at most linearly with the populations", "not measured", None)
    hit_pops = [(p["P"], p["hit"].get("compile_s")) for p in pops]
    if hit_pops and all(c for _, c in hit_pops):
        add("(no target) cache hit against populations",
            ", ".join(f"P={p}: {c:.2f} s" for p, c in hit_pops), None)
    sw = by.get("sweep-B256")
    if sw:
        s, q = (_row(sw, n).get("unit_steps_per_s") for n in (ModelcNetwork.name, ModelcSequential.name))
        if s and q and _ok(_row(sw, ModelcNetwork.name)):
            add("sweep B=256: Network.sweep ≥ 5× the throughput of 256 runs one after another",
                f"{s:.3g} vs {q:.3g} unit-steps/s = {s / q:.1f}×", s / q >= 5)
        else:
            add("sweep B=256 ≥ 5× sequential", "not measured", None)
    worst = None
    for res in results:
        if res["workload"]["family"] != "seed":
            continue
        r = _row(res, ModelcNetwork.name)
        if r.get("peak_bytes") is not None:
            ratio = r["peak_bytes"] / r["budget_bytes"] * 1.1   # peak / (W + I + R)
            if worst is None or ratio > worst[0]:
                worst = (ratio, res["workload"]["name"], r["peak_bytes"], r["budget_bytes"])
    if worst:
        add("peak memory of a run ≤ (weights + inputs + records) + 10 %",
            f"worst {worst[1]}: {worst[2] / MiB:.1f} MiB = {worst[0]:.2f}× (W+I+R)", worst[0] <= 1.1)
    else:
        add("peak memory ≤ W + I + R + 10 %", "not measured", None)
    return lines


def _model_of(label: str) -> str:
    """"numba: compile_model(seed, euler) + 1-step run" -> "seed, euler"."""
    return label.split("(", 1)[-1].split(")")[0]


def _numba_hit_text(label: str, hit: dict) -> str:
    """"seed, euler 590 ms (compile_model 25 ms + the first run; with numba's import 800 ms)"."""
    parts = [f"compile_model {hit['module_s'] * 1e3:.0f} ms + the first run"] if "module_s" in hit else []
    with_import = _with_numba_import(hit)
    if with_import is not None:
        parts.append(f"with numba's import {with_import * 1e3:.0f} ms")
    return f"{_model_of(label)} {hit['compile_s'] * 1e3:.0f} ms" + (f" ({'; '.join(parts)})" if parts else "")


def compiled_targets(results: list[dict], comp: dict) -> list[str]:
    """Issue 17's targets for the numba backend, against the hand-written C + BLAS loop run in
    the same session (ratios of two contenders are the median of their per-round ratios: they
    ran alternately, so a slow spell of the machine cancels out)."""
    table = TargetTable(results, "target (issue 17: the compiled CPU backend, numba)")
    by, lines, add, us = table.by, table.lines, table.add, table.us

    for N, bound in ((100, 1.2), (1000, 1.05), (4000, 1.05)):
        wname = f"seed-euler-N{N}"
        label = f"seed N={N} euler: numba module.run within {bound:.2f}× of the '{HandC.name}'"
        ratio = _paired_ratio(by.get(wname), ModelcNumba.name, HandC.name)
        nb, c, cs = us(wname, ModelcNumba.name), us(wname, HandC.name), us(wname, HandCScipyBlas.name)
        if ratio and nb and c:
            scipy_c = f"; the C loop with SciPy's BLAS {cs:.2f} µs" if cs else ""
            add(label, f"{nb:.2f} vs {c:.2f} µs; per-round ratio {ratio:.2f}×{scipy_c}", ratio <= bound)
        else:
            add(label, "not measured", None)
    sw = by.get("sweep-B256")
    batched = _row(sw, ModelcNumba.name) if sw else {}
    for base in (ModelcSequential, ModelcNumbaSequential):
        label = f"sweep B=256, N=100: numba module.run ≥ 8× the throughput of '{base.name}' (one thread)"
        one = _row(sw, base.name) if sw else {}
        if _ok(batched) and _ok(one):
            b, o = batched["unit_steps_per_s"], one["unit_steps_per_s"]
            add(label, f"{b:.3g} vs {o:.3g} unit-steps/s = {b / o:.1f}×", b / o >= 8)
        else:
            add(label, "not measured", None)
    speedup = _paired_ratio(sw, ModelcNumba.name, ModelcNumbaThreads.name)
    add("sweep B=256: threads=2 ≥ 1.8× the throughput of threads=1",
        "not measured" if not speedup else f"{speedup:.2f}× (per-round ratio)",
        None if not speedup else speedup >= 1.8)
    for wname, label in (("qif-euler", "QIF mean field, euler"), ("jr-euler", "Jansen-Rit, euler"),
                         ("hh-rk4", "Hodgkin-Huxley, rk4")):
        target = f"{label}: numba module.run at or below the hand-written float loop"
        hand, nb, npy, c = (us(wname, k.name) for k in (HandWritten, ModelcNumba, ModelcModule, HandC))
        if hand and nb:
            add(target, f"{nb:.2f} vs {hand:.2f} µs/step ({nb / hand:.2f}×); NumPy module "
                + (f"{npy:.2f} µs ({npy / hand:.2f}×)" if npy else "not measured")
                + (f"; the C loop {c:.3f} µs" if c else ""), nb <= hand)
        else:
            add(target, "not measured", None)
    numba_items = [i for i in (comp or {}).get("items", []) if i["label"].startswith("numba:")]
    if numba_items:
        hits = [(i["label"], i["hit"]) for i in numba_items]
        shown = "; ".join(_numba_hit_text(lbl, hit) for lbl, hit in hits if hit.get("compile_s") is not None)
        known = [hit["compile_s"] for _, hit in hits if hit.get("compile_s") is not None]
        add("numba cache hit < 100 ms per model (modelc's share, numba imported before; fresh interpreter)",
            shown or "error", None if len(known) < len(hits) else max(known) < 0.1)
        colds = [(i["label"], i["cold"].get("compile_s")) for i in numba_items]
        add("(no target) numba cold compile per model (compile_model + numba's JIT of a 1-step run)",
            "; ".join(f"{_model_of(lbl)} {c:.1f} s" for lbl, c in colds if c is not None)
            or "error", None)
    else:
        add("numba cache hit < 100 ms per model", "not measured (numba missing or --no-compile)", None)
    return lines


# ----------------------------------------------------------------------------- outputs

def markdown(results, comp, sc, meta) -> str:
    L = ["# modelc benchmarks", "",
         f"Measured {meta['when']} (modelc at {meta.get('commit', 'unknown')}) on {meta['machine']}; "
         f"{meta['python']}; numpy {meta['numpy']}; "
         f"one BLAS thread ({meta['blas']}); {meta.get('load', '')}. Command: `{meta['command']}`"
         + (" (**quick**: fewer steps)" if meta.get("quick") else "") + ".", "",
         f"Time per step is the median of {meta['repeats']} alternating runs (best run in brackets: "
         "a wide gap means other processes competed for the CPU); every contender "
         "integrates the same J (N(0,1)/√N, seed 0), the same input array (I = 1) and the same dt, and "
         "records its output every step. Speed = hand-written in-place time / contender time "
         "(the baseline of issues 2 and 6: preallocated, in place, written as the equations read; "
         "the hand-optimised row applies the compiler's tricks by hand and is a floor, not a "
         "target). "
         "Peak memory = the caller's weights and inputs + what the contender keeps after setup + "
         "the run's peak extra allocation; allowed = (weights + inputs + records) × 1.1.", "",
         "## Targets", ""]
    L += targets(results, comp, sc)
    L += ["", "## Issue 17 targets (the compiled CPU backend)", ""] + compiled_targets(results, comp)
    L += ["", "## Time per step", ""] + workload_table(results)
    sw = sweep_table(results)
    if sw:
        L += ["", "## Parameter sweep (seed model, N=100, tau over B values)", ""] + sw
    ct = compile_table(comp)
    if ct:
        L += ["", "## Compile and cache (fresh interpreter each)", ""] + ct
    st = scaling_table(sc)
    if st:
        L += ["", "## Compile time against model size", ""] + st
    notes = {}
    for res in results:
        for r in res["rows"]:
            if r.get("note"):
                notes[r["name"]] = r["note"]
    L += ["", "## Contenders", ""] + [f"- **{k}**: {v}" for k, v in notes.items()]
    L += ["", "Reproduce: `python -m benchmarks` (modelc and the hand-written loops only), or "
          "`bash benchmarks/setup_peers.sh && /tmp/modelc-bench-venv/bin/python -m benchmarks` "
          "with RectiPy, PyRates and Brian2 (add `--peers-all` to run them at N=4000 too).", ""]
    return "\n".join(L)


def plot(results, path) -> str | None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no plot"
    methods = sorted({r["workload"]["method"] for r in results if r["workload"]["family"] == "seed"})
    if not methods:
        return "no seed workloads: no plot"
    fig, axes = plt.subplots(1, len(methods), figsize=(6.2 * len(methods), 4.8), squeeze=False)
    names = sorted({r["name"] for res in results for r in res["rows"]})
    hand_styles = {HandWritten.name: dict(color="k", linestyle="--"),
                   HandOptimised.name: dict(color="0.5", linestyle="--"),
                   HandC.name: dict(color="C3", linestyle="--")}
    colors = {n: f"C{i % 10}" for i, n in enumerate(n for n in names if n not in hand_styles)}
    for ax, m in zip(axes[0], methods):
        series = {}
        for res in results:
            wl = res["workload"]
            if wl["family"] != "seed" or wl["method"] != m:
                continue
            for r in res["rows"]:
                if _ok(r):
                    series.setdefault(r["name"], []).append((wl["N"], r["us_per_step"]))
        for name, pts in sorted(series.items()):
            pts.sort()
            style = hand_styles.get(name) or dict(color=colors.get(name), linestyle="-")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=name, **style)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("N (units)")
        ax.set_ylabel("µs per step")
        ax.set_title(f"seed network, {m}, one BLAS thread")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return None


def write(out_dir, results, comp, sc, meta) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    md = markdown(results, comp, sc, meta)
    md_path = os.path.join(out_dir, "results.md")
    with open(md_path, "w") as f:
        f.write(md)
    png_path = os.path.join(out_dir, "results.png")
    why = plot(results, png_path)
    return dict(md=md_path, png=None if why else png_path, md_text=md, plot_note=why)
