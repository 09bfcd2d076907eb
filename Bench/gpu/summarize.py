#!/usr/bin/env python3
"""Writes summary.md for a GPU validation run: per batch size, the engine's whole forward pass
(`alexnet bench --format json`) against each PyTorch mode (pytorch_alexnet.py's JSON): images/s and the ratio
ours / theirs (above 1: the engine is faster); the logits comparisons; the status of every step of the run.

usage: summarize.py --out summary.md [--bench bench.json] [--pytorch pytorch.json] [--steps steps.tsv]
                    [--mode LABEL=FILE ...] [--results FILE ...] [--log LABEL=FILE ...]

Each --mode file is another `alexnet bench --format json` of the same run (another precision, --fuse off, --graph
off, an epilogue, a workspace): its rows join the engine's in each batch's table, with the ratio of bench.json's
images/s to theirs, and each batch ends with the fastest engine mode against the fastest PyTorch mode.

steps.tsv holds one step per line: name, exit status (a number, or a word such as "skipped"), seconds, what
ran, separated by tabs. The closing lines of each --results file (check.txt, features.txt, classify.txt: pass
counts, kernels compiled or loaded from the cache, rates) are quoted. Each --log file's last lines go into the summary under LABEL. A missing or unreadable
input is named in the summary instead of stopping it: the summary is written whatever else failed.
"""
import argparse
import json
import os
import sys

LOG_LINES = 40
# The lines of the text results that say how a step ended (the CLI's and alexnet_numpy.py's totals).
RESULT_PREFIXES = ("checks:", "kernel modules:", "layers:", "images:", "stats:", "FAIL")


def load(path):
    """(object, None) or (None, why it could not be read)."""
    if not path:
        return None, "not given"
    if not os.path.exists(path):
        return None, f"{os.path.basename(path)} was not written"
    if os.path.getsize(path) == 0:
        return None, f"{os.path.basename(path)} is empty: the run wrote nothing (its error is in the step's log)"
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f), None
    except (OSError, ValueError) as e:
        return None, f"{os.path.basename(path)} is not readable JSON ({e})"


def number(value, digits):
    return "–" if value is None else f"{value:.{digits}f}"


def ratio(ours, theirs):
    """ours / theirs in images/s, as printed (3 decimals), or a dash when either is missing."""
    if not ours or not theirs:
        return "–"
    return f"{ours / theirs:.3f}"


def steps_table(path):
    lines = ["## Steps", ""]
    if not path or not os.path.exists(path):
        return lines + ["No step statuses were recorded.", ""]
    lines += ["| step | exit | seconds | what ran |", "|---|---|---|---|"]
    with open(path, encoding="utf-8") as f:
        for row in f:
            parts = row.rstrip("\n").split("\t")
            if len(parts) < 4:
                continue
            name, code, seconds, what = parts[0], parts[1], parts[2], "\t".join(parts[3:])
            shown = code if code != "0" else "0 (ok)"
            if code == "124":
                shown = "124 (timed out)"
            lines.append(f"| {name} | {shown} | {seconds} | `{what.replace('|', '/')}` |")
    return lines + [""]


# Dense peak FLOP/s by number format, from NVIDIA's datasheets: H100 SXM and H200 67 TFLOP/s FP32, 495 TF32,
# 989 FP16/BF16; H100 PCIe 51, 378, 756. The first name found in the device's description decides.
PEAKS = [("H100 PCIe", {"fp32": 51e12, "tf32": 378e12, "16": 756e12}),
         ("H100", {"fp32": 67e12, "tf32": 495e12, "16": 989e12}),
         ("H200", {"fp32": 67e12, "tf32": 495e12, "16": 989e12})]
# BVLC AlexNet's forward pass: 724,406,816 multiply-adds per image (docs/model.md).
FLOP_PER_IMAGE = 2 * 724406816


def peak_share(device, precision, images_per_second):
    """The share of the device's dense peak for the format that the rate reaches, or '?' for an unknown device."""
    if images_per_second is None:
        return ""
    fmt = "16" if precision in ("fp16", "bf16") else precision if precision == "tf32" else "fp32"
    for name, peaks in PEAKS:
        if name in (device or ""):
            return f"{images_per_second * FLOP_PER_IMAGE / peaks[fmt]:.1%}"
    return "?"


def engine_label(entry, label=None):
    """The engine row's name: which run, whether it replayed a CUDA graph, and its precision."""
    graph = " replaying its CUDA graph" if entry.get("graph") else ""
    return f"engine{' ' + label if label else ''} (`alexnet bench`{graph}, {{precision}})"


def throughput_tables(bench, bench_why, torch_report, torch_why, engine_modes=()):
    lines = ["## Whole forward pass: the engine against PyTorch", ""]
    if bench is None:
        lines += [f"The engine's benchmark is missing: {bench_why}.", ""]
    else:
        versions = bench.get("versions", {})
        lines.append(f"Engine: {bench.get('description') or bench.get('device')}; GEMMs {versions.get('gemm', '?')}; "
                     f"compiler {versions.get('compiler', '?')}; weights {bench.get('weights', '?')}.")
    if torch_report is None:
        lines += [f"PyTorch: not compared ({torch_why}).", ""]
    else:
        v = torch_report.get("versions", {})
        lines.append(f"PyTorch {v.get('torch', '?')} (CUDA {v.get('cuda', '?')}, cuDNN {v.get('cudnn', '?')}) on "
                     f"{torch_report.get('device', '?')}; cuDNN benchmark mode "
                     f"{'on' if torch_report.get('settings', {}).get('cudnn_benchmark') else 'off'}"
                     f"{'' if torch_report.get('complete') else '; the PyTorch run did not complete'}.")
    lines += ["Ratio = the engine's images/s ÷ that row's (above 1: the engine is faster). Both are timed with device "
              "events around each pass after a warm-up: median and minimum of the timed passes. Of peak = images/s × "
              "1.449 GFLOP ÷ the GPU's dense peak for the row's number format (FP32, TF32, or FP16/BF16): the share of "
              "the compute roofline reached.", ""]
    engine_device = (bench or {}).get("description") or (bench or {}).get("device")
    engine_precision = (bench or {}).get("precision", "fp32")
    torch_device = (torch_report or {}).get("device") or engine_device
    ours = {r["batch"]: r for r in (bench or {}).get("results", [])}
    # The other engine runs: label -> (report or None, why not), their results by batch.
    mode_results = {}
    for label, (report, why) in engine_modes:
        if report is None:
            lines += [f"Engine run {label}: not shown ({why}).", ""]
            continue
        mode_results[label] = (report, {r["batch"]: r for r in report.get("results", [])})
    modes = (torch_report or {}).get("modes", {})
    theirs = {}
    for mode, entry in modes.items():
        for r in entry.get("results", []):
            theirs.setdefault(r["batch"], {})[mode] = r
    batches = set(ours) | set(theirs)
    for _, by_batch in mode_results.values():
        batches |= set(by_batch)
    for batch in sorted(batches):
        fastest_engine, fastest_torch = None, None
        lines += [f"### Batch {batch}", "", "| implementation | images/s | median ms | min ms | of peak | ours ÷ this |", "|---|---|---|---|---|---|"]
        mine = ours.get(batch)
        mine_ips = None
        if mine is None:
            lines.append("| engine (`alexnet bench`) | not measured | | | | |")
        elif "skipped" in mine:
            lines.append(f"| engine (`alexnet bench`) | skipped: {mine['skipped']} | | | | |")
        else:
            mine_ips = mine.get("images_per_second")
            fastest_engine = ("bench.json", mine_ips) if mine_ips else None
            lines.append(f"| {engine_label(mine).format(precision=engine_precision)} | {number(mine_ips, 1)} | {number(mine.get('median_ms'), 4)} | "
                         f"{number(mine.get('min_ms'), 4)} | {peak_share(engine_device, engine_precision, mine_ips)} | 1.000 |")
            # With a graph, bench also timed the same pass launch by launch, in the same model and run.
            stream_ms = mine.get("stream_median_ms") if mine.get("graph") else None
            if stream_ms:
                stream_ips = batch / (stream_ms / 1000)
                lines.append(f"| launch by launch (the engine without its graph) | {number(stream_ips, 1)} | {number(stream_ms, 4)} | "
                             f"{number(mine.get('stream_min_ms'), 4)} | {peak_share(engine_device, engine_precision, stream_ips)} | "
                             f"{ratio(mine_ips, stream_ips)} |")
            elif mine.get("graph_failure"):
                lines.append(f"| (no graph: its capture failed: {mine['graph_failure'].replace('|', '/')}) | | | | | |")
        for label, (report, by_batch) in mode_results.items():
            r = by_batch.get(batch)
            if r is None:
                continue
            precision = report.get("precision", "fp32")
            if "skipped" in r:
                lines.append(f"| engine {label} | skipped: {r['skipped'].replace('|', '/')} | | | | |")
                continue
            ips = r.get("images_per_second")
            if ips and (fastest_engine is None or ips > fastest_engine[1]):
                fastest_engine = (label, ips)
            lines.append(f"| {engine_label(r, label).format(precision=precision)} | {number(ips, 1)} | {number(r.get('median_ms'), 4)} | "
                         f"{number(r.get('min_ms'), 4)} | {peak_share(report.get('description') or report.get('device'), precision, ips)} | "
                         f"{ratio(mine_ips, ips)} |")
        for mode, entry in modes.items():
            r = theirs.get(batch, {}).get(mode)
            label = f"PyTorch {mode} ({entry.get('description', '')})"
            if r is None:
                continue
            if "error" in r:
                lines.append(f"| {label} | error: {r['error'].replace('|', '/')} | | | | |")
                continue
            ips = r.get("images_per_second")
            if ips and (fastest_torch is None or ips > fastest_torch[1]):
                fastest_torch = (mode, ips)
            lines.append(f"| {label} | {number(ips, 1)} | {number(r.get('median_ms'), 4)} | {number(r.get('min_ms'), 4)} | "
                         f"{peak_share(torch_device, mode, ips)} | {ratio(mine_ips, ips)} |")
        lines.append("")
        if fastest_engine and fastest_torch:
            lines += [f"Fastest: the engine's {fastest_engine[0]} at {fastest_engine[1]:.1f} images/s, PyTorch's {fastest_torch[0]} at "
                      f"{fastest_torch[1]:.1f}: {ratio(fastest_engine[1], fastest_torch[1])} (above 1: the engine is faster).", ""]
    return lines


def logits_table(torch_report):
    lines = ["## Logits (fc8) on the same images", ""]
    if torch_report is None:
        return lines + ["No PyTorch comparison.", ""]
    lines += ["Relative = max |difference| / max |other|; top-1 = images with the same top class. A mode passes when "
              "both are within its tolerance at every batch size (FP32 modes decide the run's pass).", "",
              "| compared | tolerance | worst vs numpy float64 | top-1 vs numpy | worst vs engine | top-1 vs engine | pass |",
              "|---|---|---|---|---|---|---|"]
    base = torch_report.get("engine_vs_numpy")
    if base:
        lines.append(f"| engine vs numpy | 1e-04 | {base['relative']:.2e} | {base['top1_agree']}/{base['images']} | | | "
                     f"{'yes' if base['relative'] <= 1e-4 and base['top1_agree'] == base['images'] else 'NO'} |")
    for mode, entry in torch_report.get("modes", {}).items():
        compared = [r["logits"] for r in entry.get("results", []) if "logits" in r]
        errors = [r for r in entry.get("results", []) if "error" in r]

        def worst(key):
            found = [c[key] for c in compared if c.get(key)]
            if not found:
                return "–", "–"
            rel = max(c["relative"] for c in found)
            agree = sum(c["top1_agree"] for c in found)
            total = sum(c["images"] for c in found)
            return f"{rel:.2e}", f"{agree}/{total}"

        rel_n, top_n = worst("vs_numpy")
        rel_e, top_e = worst("vs_engine")
        ok = bool(compared) and not errors and all(c.get("pass") for c in compared)
        lines.append(f"| PyTorch {mode} | {entry.get('tolerance', 0):.0e} | {rel_n} | {top_n} | {rel_e} | {top_e} | "
                     f"{'yes' if ok else 'NO'}{'' if entry.get('fp32') else ' (informative)'} |")
    failures = torch_report.get("failures", [])
    lines += ["", f"FP32 comparisons: {'all passed' if not failures else '; '.join(failures)}.", ""]
    return lines


def result_lines(paths):
    lines = ["## Results of the text steps", ""]
    for path in paths:
        name = os.path.basename(path)
        if not os.path.exists(path):
            lines.append(f"- {name}: not written")
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            found = [line.strip() for line in f if line.startswith(RESULT_PREFIXES)]
        lines += [f"- {name}: {line}" for line in found] or [f"- {name}: no totals found (see the file)"]
    return lines + [""]


def log_sections(logs):
    lines = []
    for item in logs:
        label, _, path = item.partition("=")
        if not path or not os.path.exists(path) or os.path.getsize(path) == 0:
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            tail = f.read().splitlines()[-LOG_LINES:]
        lines += [f"## {label} (last {len(tail)} lines)", "", "```", *tail, "```", ""]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--bench")
    parser.add_argument("--pytorch")
    parser.add_argument("--steps")
    parser.add_argument("--mode", action="append", default=[], help="LABEL=FILE: another engine bench JSON of the run")
    parser.add_argument("--results", action="append", default=[], help="a text result whose totals are quoted")
    parser.add_argument("--log", action="append", default=[], help="LABEL=FILE: that file's last lines under LABEL")
    a = parser.parse_args()
    bench, bench_why = load(a.bench)
    torch_report, torch_why = load(a.pytorch)
    title = "# GPU validation run"
    if bench is not None:
        title += f": {bench.get('device', '?')}"
    lines = [title, ""]
    lines += steps_table(a.steps)
    engine_modes = []
    for item in a.mode:
        label, _, path = item.partition("=")
        engine_modes.append((label, load(path)))
    lines += throughput_tables(bench, bench_why, torch_report, torch_why, engine_modes)
    lines += logits_table(torch_report)
    if a.results:
        lines += result_lines(a.results)
    lines += log_sections(a.log)
    with open(a.out, "w", encoding="utf-8") as f:
        f.write("\n".join(lines).rstrip("\n") + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
