#!/usr/bin/python3
"""Run `alexnet classify` over an image corpus and check that the decoder survived every file.

    run_corpus.py --cli PATH/alexnet --weights W --corpus DIR --decoder NAME
                  [--workers K] [--jobs J] [--chunk 500] [--batch 8] [--hang-seconds 60]
                  [--time-limit MIN] [--out DIR] [--extra-args ARG ...]

The corpus (make_corpus.py's output, or any folder) is classified in chunks of --chunk files passed
as explicit paths, each chunk one process under `/usr/bin/time -v` (peak RSS), watched for stalls
(no new output line for --stall-seconds: the process group is killed). When a chunk dies or stalls,
the records it wrote are kept and the files that may have caused it are run one file per process,
which names the culprit; everything after it continues as a new chunk. So a death or a hang costs
one chunk's progress, not the run.

A file is a *hang* when, alone in its process, it gives no output for --hang-seconds (counted from
the start of the process). The stall limit can be shorter, which makes each hang cheaper to find: the
suspects are first run alone with the stall limit; the first that stops too is taken as the culprit
and the chunk continues without it, while a separate one-file run with the full --hang-seconds
decides whether it hangs or is only slow (a *slow file*: listed with its time, not a failure).
With --jobs 2 those confirmations run beside the chunks. A chunk that stalls although no file does
alone is run again as it was, with the full --hang-seconds: if it stops again, that is a hang of
unknown cause.

Which files can be the culprit follows from the pipeline of `classify`: results of batch j are written
just before batch j+3 is decoded, so after k records (k > 0) the batch being decoded is files
[k+2B, k+3B) (B = --batch); with no record yet it is one of the first three batches. Those files are
run alone first, in that order, and the search stops at the first culprit.

Checked:
  * exit status 0 or 1 (anything else, a signal included, is a death)
  * exactly one record per input file, in input order (lost, duplicated, out of order, malformed)
  * error texts: one line, naming the file, reading like a sentence; texts that look like raw .NET
    exception messages, and Skia result names, are listed separately
  * the images in DIR/good/, spread through the run among the hostile files, give the same
    probabilities (max |diff| <= --tolerance) as a separate run over good/ alone
Written to --out: summary.json, summary.md, records.jsonl (the final record of every file),
runs.jsonl (every process: files, status, wall time, peak RSS) and stderr/ of the failed processes.

Exit status: 0 when there were no deaths, hangs, lost/duplicated/malformed records and no drift in
the good images; 1 otherwise; 3 when --time-limit stopped the run before every file was run.
"""
import argparse
import collections
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

# Texts that a .NET runtime or library produces, not a sentence written for a user.
RAW_EXCEPTION_PATTERNS = [
    ("Object reference not set", re.compile(r"Object reference not set")),
    ("Sequence contains", re.compile(r"Sequence contains")),
    ("Index was outside", re.compile(r"Index was outside")),
    ("Arithmetic operation", re.compile(r"Arithmetic operation")),
    ("Specified argument", re.compile(r"Specified argument")),
    ("Value cannot be null", re.compile(r"Value cannot be null")),
    ("Attempted to divide by zero", re.compile(r"Attempted to divide by zero")),
    ("Offset and length", re.compile(r"Offset and length")),
    ("Destination is too short", re.compile(r"Destination is too short")),
    ("Non-negative number required", re.compile(r"Non-negative number required")),
    ("Unable to read beyond the end", re.compile(r"Unable to read beyond the end")),
    ("Unable to cast", re.compile(r"Unable to cast")),
    ("Input string was not in a correct format", re.compile(r"Input string was not in a correct format")),
    ("Nullable object must have a value", re.compile(r"Nullable object must have a value")),
    ("Arithmetic/overflow", re.compile(r"resulted in an overflow")),
    ("(Parameter '…')", re.compile(r"\(Parameter '")),
    ("System.", re.compile(r"\bSystem\.[A-Z]")),
    ("SixLabors.", re.compile(r"\bSixLabors\.[A-Z]")),
    ("SkiaSharp.", re.compile(r"\bSkiaSharp\.[A-Z]")),
    ("Exception", re.compile(r"Exception")),
    ("stack frame ' at '", re.compile(r"(^|\s)at [A-Za-z_][\w.`<>]*\.[\w<>`]+\(")),
]
# Skia's SKCodecResult names: understandable to some users, but not a sentence.
SKIA_NAMES = re.compile(r"\b(Skia: \w+|ErrorInInput|IncompleteInput|InvalidInput|InvalidConversion|InvalidScale|"
                        r"InvalidParameters|CouldNotRewind|Unimplemented|InternalError|OutOfMemory)\b")


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, file=sys.stderr, flush=True)


def find_images(root):
    """Every image file under root, by ordinal path (the order the CLI uses for a folder)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        for f in filenames:
            if f.lower().endswith(IMAGE_EXTENSIONS):
                out.append(os.path.join(dirpath, f))
    return sorted(out)


def kind_of(path):
    """FORMAT_KIND from a name like m01234_png_ihdr-width-crcok.png; 'seed' or 'good' otherwise."""
    base = os.path.basename(path)
    m = re.match(r"m\d+_([a-z]+)_([^.]+)\.", base)
    if m:
        return f"{m.group(1)}_{m.group(2)}"
    return os.path.basename(os.path.dirname(path))


class Runner:
    def __init__(self, args):
        self.a = args
        self.lock = threading.Lock()
        self.out = args.out
        os.makedirs(os.path.join(self.out, "stderr"), exist_ok=True)
        self.runs_log = open(os.path.join(self.out, "runs.jsonl"), "w")
        self.run_id = 0
        self.records = {}             # file -> (record, run id)
        self.deaths = []              # dicts: file(s), status, stderr excerpt, attributed
        self.hangs = []
        self.stalls = []              # files that finish alone but took longer than the stall limit
        self.false_alarms = []        # chunks that stalled, but neither alone nor again with the full limit
        self.startup_s = 0.0
        self.lost = []                # files without their record in a run that ended normally
        self.duplicates = []
        self.out_of_order = []
        self.malformed = []
        self.singles_elapsed = {}     # file -> seconds for the whole one-file process
        self.gaps = []                # (seconds without output, run id, files of the window)
        self.chunk_rss = []           # (peak RSS kB, run id, files)
        self.tasks = collections.deque()
        self.active = 0
        self.stop_new_chunks = False
        self.started = time.monotonic()
        self.not_run = []
        self.unconfirmed = []         # stalled alone, but the time limit came before the full-length run

    # -- one process
    def run_cli(self, files, label, limit=None):
        # one file: the hang limit itself; several: the stall limit that sends them to one-file runs
        if limit is None:
            limit = self.a.hang_seconds if len(files) == 1 else self.a.stall_seconds
        with self.lock:
            self.run_id += 1
            rid = self.run_id
        timefile = os.path.join(self.out, "stderr", f"run{rid}.time")
        errfile = os.path.join(self.out, "stderr", f"run{rid}.stderr")
        cmd = ["/usr/bin/time", "-v", "-o", timefile, self.a.cli, "classify", "--weights", self.a.weights,
               "--device", "opencl", "--format", "json", "--decoder", self.a.decoder, "--workers", str(self.a.workers),
               "--batch", str(self.a.batch), "--top", str(self.a.top)] + self.a.extra_args + list(files)
        lines = []
        t0 = time.monotonic()
        last = [t0]
        with open(errfile, "wb") as err:
            p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)

            def reader():
                for raw in p.stdout:
                    now = time.monotonic()
                    lines.append((now - t0, raw))
                    last[0] = now

            th = threading.Thread(target=reader, daemon=True)
            th.start()
            hung = False
            while p.poll() is None:
                time.sleep(0.1)
                if time.monotonic() - last[0] > limit:
                    hung = True
                    try:
                        os.killpg(p.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    p.wait()
                    break
            th.join(timeout=10)
        wall = time.monotonic() - t0
        status, sig, rss = None, None, None
        try:
            with open(timefile) as f:
                for line in f:
                    line = line.strip()
                    if line.startswith("Command terminated by signal"):
                        sig = int(line.rsplit(" ", 1)[1])
                    elif line.startswith("Exit status:"):
                        status = int(line.split(":")[1])
                    elif line.startswith("Maximum resident set size"):
                        rss = int(line.split(":")[1])
        except (OSError, ValueError):
            pass
        if sig is not None:
            status = 128 + sig
        if status is None and not hung:
            status = p.returncode if p.returncode >= 0 else 128 - p.returncode
        r = dict(id=rid, label=label, files=list(files), lines=lines, status=status, signal=sig, hung=hung,
                 wall=wall, rss_kb=rss, stderr=errfile)
        with self.lock:
            self.runs_log.write(json.dumps(dict(id=rid, label=label, n=len(files), first=files[0], status=status,
                                                signal=sig, hung=hung, wall=round(wall, 3), rss_kb=rss,
                                                records=len(lines))) + "\n")
            self.runs_log.flush()
        if status in (0, 1) and not hung:
            # Nothing worth keeping from a process that ended normally.
            for f in (errfile, timefile):
                try:
                    os.remove(f)
                except OSError:
                    pass
        return r

    @staticmethod
    def parse(lines, complete):
        """Records from stdout lines; a last line without its newline is dropped when the process died."""
        recs, bad = [], []
        for i, (t, raw) in enumerate(lines):
            if not raw.endswith(b"\n") and not complete:
                break
            try:
                rec = json.loads(raw)
                if not isinstance(rec, dict) or not isinstance(rec.get("file"), str) or (("top" in rec) == ("error" in rec)):
                    raise ValueError("not a record")
                recs.append((t, rec))
            except ValueError:
                bad.append(raw[:300].decode("utf-8", "replace"))
        return recs, bad

    def stderr_excerpt(self, path):
        try:
            with open(path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        keep = [l for l in text.splitlines() if l.strip()]
        return "\n".join(keep[:12])

    # -- checking one run's records against its files
    def absorb(self, r):
        files = r["files"]
        normal = r["status"] in (0, 1) and not r["hung"]
        recs, bad = self.parse(r["lines"], normal)
        with self.lock:
            self.malformed += [dict(run=r["id"], text=b) for b in bad]
        k = 0
        seen = collections.Counter()
        for t, rec in recs:
            seen[rec["file"]] += 1
        with self.lock:
            for f, n in seen.items():
                if n > 1:
                    self.duplicates.append(dict(run=r["id"], file=f, count=n))
        # the prefix that matches the input order
        while k < len(recs) and k < len(files) and recs[k][1]["file"] == files[k]:
            k += 1
        with self.lock:
            for t, rec in recs[:k]:
                self.records.setdefault(rec["file"], (rec, r["id"]))
            if k < len(recs):
                self.out_of_order.append(dict(run=r["id"], at=k, expected=files[k] if k < len(files) else None,
                                              got=recs[k][1]["file"]))
            # gaps between output lines (the first line also waited for the start: not a decode time)
            prev = None
            for i, (t, rec) in enumerate(recs[:k]):
                if prev is not None and t - prev > 0.05:
                    self.gaps.append((t - prev, r["id"], files[i:i + 3 * self.a.batch]))
                prev = t
            if r["rss_kb"] is not None and len(files) > 1:
                self.chunk_rss.append((r["rss_kb"], r["id"], len(files)))
        return normal, k, recs

    # -- tasks
    def chunk_task(self, files, label):
        r = self.run_cli(files, label)
        normal, k, recs = self.absorb(r)
        if normal:
            if k < len(files):
                missing = [f for f in files if f not in {rec["file"] for _, rec in recs}]
                with self.lock:
                    self.lost += [dict(run=r["id"], file=f) for f in missing]
                # those files still need their records: once more, one process per file
                rest = [f for f in files[k:] if f not in self.records]
                if rest:
                    self.push(("single", rest[0], dict(kind="lost", order=rest, next=0, found=None, rest=[], label=label,
                                                       run=r["id"], status=r["status"], signal=r["signal"], stderr="")),
                              front=True)
            return
        what = "stall" if r["hung"] else "death"
        b = self.a.batch
        rest = files[k:]
        if not rest:
            # every record written, then the process died or would not end
            entry = dict(file=None, suspects=[], kind=f"{what} after the last record", status=r["status"],
                         signal=r["signal"], run=r["id"], stderr=self.stderr_excerpt(r["stderr"]))
            with self.lock:
                (self.hangs if r["hung"] else self.deaths).append(entry)
            log(f"run {r['id']} ({label}): {what} after its last record")
            return
        window = rest[:3 * b]
        if k > 0:
            order = window[2 * b:3 * b] + window[:2 * b]
        else:
            order = list(window)
        event = dict(kind=what, run=r["id"], status=r["status"], signal=r["signal"], order=order, next=0, found=None,
                     rest=rest, label=label, stderr=self.stderr_excerpt(r["stderr"]), records_before=k)
        log(f"run {r['id']} ({label}): {what} (status {r['status']}) after {k} of {len(files)} records; "
            f"running up to {len(order)} files alone")
        self.push(("single", order[0], event), front=True)

    def single_task(self, f, event):
        """One suspect alone, with the stall limit: a quick answer to 'is it this one?'."""
        r = self.run_cli([f], "single", limit=self.a.stall_seconds)
        normal, k, recs = self.absorb(r)
        culprit = not normal
        with self.lock:
            self.singles_elapsed[f] = r["wall"]
            if normal and k < 1:
                self.lost.append(dict(run=r["id"], file=f))
            elif not normal and not r["hung"]:
                self.deaths.append(dict(file=f, kind=kind_of(f), status=r["status"], signal=r["signal"], run=r["id"],
                                        stderr=self.stderr_excerpt(r["stderr"]), wall=round(r["wall"], 2)))
                log(f"  death: {f} (status {r['status']})")
        if r["hung"]:
            log(f"  stalls alone too: {f}; confirming with {self.a.hang_seconds:.0f} s")
            self.push(("confirm", f, None), front=True)
        event["next"] += 1
        if event["kind"] == "lost":
            # one-file runs for files a normal run did not report; nothing continues after them
            if event["next"] < len(event["order"]):
                self.push(("single", event["order"][event["next"]], event), front=True)
            return
        if culprit:
            event["found"] = f
        elif event["next"] < len(event["order"]):
            self.push(("single", event["order"][event["next"]], event), front=True)
            return
        elif event["kind"] == "stall" and self.a.stall_seconds < self.a.hang_seconds:
            # no file stalls alone: run the suspects together again, now with the full hang limit
            self.push(("window", event["order"], event), front=True)
            return
        else:
            # the chunk failed, but no file fails alone: still a failure, of unknown cause
            self.unreproduced(event, "died" if event["kind"] == "death" else "hung")
        self.continue_chunk(event)

    def confirm_task(self, f):
        """A file that stalled alone, given the full hang limit: a hang, or only slow."""
        r = self.run_cli([f], "confirm", limit=self.a.hang_seconds)
        normal, k, recs = self.absorb(r)
        with self.lock:
            self.singles_elapsed[f] = r["wall"]
            if r["hung"]:
                self.hangs.append(dict(file=f, kind=kind_of(f), status=None, signal=None, run=r["id"], stderr=self.stderr_excerpt(r["stderr"]),
                                       wall=round(r["wall"], 2)))
                log(f"  hang: {f}")
            elif not normal:
                self.deaths.append(dict(file=f, kind=kind_of(f), status=r["status"], signal=r["signal"], run=r["id"],
                                        stderr=self.stderr_excerpt(r["stderr"]), wall=round(r["wall"], 2)))
                log(f"  death: {f} (status {r['status']})")
            else:
                self.stalls.append(dict(file=f, kind=kind_of(f), seconds=round(r["wall"] - self.startup_s, 1), run=r["id"]))
                if k < 1:
                    self.lost.append(dict(run=r["id"], file=f))
                log(f"  slow, not hung: {f} ({r['wall']:.0f} s alone)")

    def window_task(self, files, event):
        r = self.run_cli(files, "window", limit=self.a.hang_seconds)
        normal, k, recs = self.absorb(r)
        if normal:
            with self.lock:
                self.false_alarms.append(dict(run=event["run"], files=len(files)))
            log(f"  run {event['run']}: a false alarm (its files ran together in {r['wall']:.0f} s)")
        else:
            event["status"], event["signal"], event["stderr"] = r["status"], r["signal"], self.stderr_excerpt(r["stderr"])
            self.unreproduced(event, "hung" if r["hung"] else "died")
        self.continue_chunk(event)

    def unreproduced(self, event, what):
        entry = dict(file=None, suspects=event["order"], kind=f"{what} with other files, not alone", status=event["status"],
                     signal=event["signal"], run=event["run"], stderr=event["stderr"])
        with self.lock:
            (self.hangs if what == "hung" else self.deaths).append(entry)
        log(f"  run {event['run']}: {what}, but no file does alone")

    def continue_chunk(self, event):
        """Everything of the chunk not yet recorded, the culprit left out, continues as a chunk."""
        with self.lock:
            left = [x for x in event["rest"] if x not in self.records and x != event["found"]]
        if left:
            self.push(("chunk", left, f"{event['label']}+"), front=True)

    def push(self, task, front=False):
        with self.lock:
            (self.tasks.appendleft if front else self.tasks.append)(task)

    def worker(self):
        while True:
            with self.lock:
                if self.a.time_limit and time.monotonic() - self.started > 60 * self.a.time_limit and not self.stop_new_chunks:
                    self.stop_new_chunks = True
                    log("time limit reached: no new chunks (the files of running events are still run alone)")
                task = None
                if self.tasks:
                    # singles first; chunks only while the time limit allows
                    if not self.stop_new_chunks:
                        task = self.tasks.popleft()
                    else:
                        # past the time limit: finish the searches under way, leave chunks and confirmations
                        while self.tasks and self.tasks[0][0] in ("chunk", "confirm"):
                            t = self.tasks.popleft()
                            if t[0] == "chunk":
                                self.not_run += t[1]
                            else:
                                self.unconfirmed.append(t[1])
                        if self.tasks:
                            task = self.tasks.popleft()
                if task is None:
                    if self.active == 0:
                        return
                else:
                    self.active += 1
            if task is None:
                time.sleep(0.2)
                continue
            try:
                if task[0] == "chunk":
                    self.chunk_task(task[1], task[2])
                elif task[0] == "window":
                    self.window_task(task[1], task[2])
                elif task[0] == "confirm":
                    self.confirm_task(task[1])
                else:
                    self.single_task(task[1], task[2])
            finally:
                with self.lock:
                    self.active -= 1

    def run_all(self, tasks):
        for t in tasks:
            self.push(t)
        threads = [threading.Thread(target=self.worker) for _ in range(self.a.jobs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def analyse_error(file, text):
    """(normalised text, [flags]) for an error record."""
    flags = []
    msg = text
    if msg.startswith(file + ": "):
        msg = msg[len(file) + 2:]
    else:
        flags.append("does not start with the file")
    if "\n" in text or "\r" in text:
        flags.append("more than one line")
    if any(ord(c) < 32 for c in text.replace("\n", "").replace("\r", "")):
        flags.append("control characters")
    if not msg.strip():
        flags.append("empty")
    if len(msg) > 400:
        flags.append("longer than 400 characters")
    raw = [name for name, rx in RAW_EXCEPTION_PATTERNS if rx.search(msg)]
    skia = SKIA_NAMES.findall(msg)
    norm = re.sub(r"\d+", "N", msg)
    return norm, flags, raw, skia


def compare_top(a, b, tol):
    """Largest |difference| between two top lists, by class index; None if the classes differ beyond ties."""
    pa = {t["index"]: t["probability"] for t in a}
    pb = {t["index"]: t["probability"] for t in b}
    worst = 0.0
    for i in set(pa) | set(pb):
        if i in pa and i in pb:
            worst = max(worst, abs(pa[i] - pb[i]))
        else:
            # a class in one top list only: acceptable only as a tie at the cut-off
            p = pa.get(i, pb.get(i))
            other_min = min(pb.values()) if i in pa else min(pa.values())
            if abs(p - other_min) > tol:
                return None
            worst = max(worst, abs(p - other_min))
    return worst


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__)
    ap.add_argument("--cli", required=True, help="the alexnet launcher or binary")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--corpus", required=True)
    ap.add_argument("--decoder", required=True)
    ap.add_argument("--workers", type=int, default=2, help="the CLI's decode threads (--workers of classify)")
    ap.add_argument("--jobs", type=int, default=1, help="CLI processes at once")
    ap.add_argument("--chunk", type=int, default=500, help="files per process")
    ap.add_argument("--batch", type=int, default=8,
                    help="the CLI's --batch: small batches keep the files in flight at a death or hang few")
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--hang-seconds", type=float, default=60, help="no output for this long from a one-file process: a hang")
    ap.add_argument("--stall-seconds", type=float, default=None,
                    help="no output for this long from a chunk: stop it and find the culprit (default: --hang-seconds)")
    ap.add_argument("--tolerance", type=float, default=1e-5)
    ap.add_argument("--time-limit", type=float, default=0, help="minutes; then no new chunks are started (0: none)")
    ap.add_argument("--slow-rerun", type=int, default=4,
                    help="the longest pauses in output whose files are rerun one per process to time them")
    ap.add_argument("--out", help="results folder (default: fuzz-results/DECODER-TIME)")
    ap.add_argument("--extra-args", nargs=argparse.REMAINDER, default=[], help="the rest goes to classify")
    a = ap.parse_args()
    if a.stall_seconds is None:
        a.stall_seconds = a.hang_seconds
    a.cli = os.path.abspath(a.cli)
    a.weights = os.path.abspath(a.weights)
    a.corpus = os.path.abspath(a.corpus)
    a.out = os.path.abspath(a.out or os.path.join("fuzz-results", f"{a.decoder}-{time.strftime('%Y%m%d-%H%M%S')}"))
    if not os.path.exists("/usr/bin/time"):
        sys.exit("/usr/bin/time is needed (Debian: apt-get install time)")

    good_dir = os.path.join(a.corpus, "good")
    files = find_images(a.corpus)
    good = [f for f in files if f.startswith(good_dir + os.sep)]
    bad = [f for f in files if not f.startswith(good_dir + os.sep)]
    # The good images go among the hostile ones, evenly, so that each shares chunks and batches with them.
    order = list(bad)
    for i, g in enumerate(good):
        order.insert(min(len(order), (i * len(order)) // max(1, len(good)) + i), g)
    log(f"{len(order)} files ({len(good)} good) in {a.corpus}; decoder {a.decoder}; results in {a.out}")

    run = Runner(a)
    t_start = time.monotonic()

    # The reference for the good images: good/ alone, in one process.
    baseline = {}
    if good:
        r = run.run_cli(good, "good-only")
        recs, _ = Runner.parse(r["lines"], r["status"] in (0, 1) and not r["hung"])
        if r["status"] not in (0, 1) or r["hung"]:
            log(f"the run over good/ alone failed (status {r['status']}, hung {r['hung']}): {run.stderr_excerpt(r['stderr'])}")
        baseline = {rec["file"]: rec for _, rec in recs}
        if r["status"] == 2:
            sys.exit(f"classify could not run: {run.stderr_excerpt(r['stderr'])}")
    # The time of a process that classifies one small image: what a single's wall time includes besides its file.
    startup = []
    probe = good[0] if good else order[0]
    for _ in range(3):
        startup.append(run.run_cli([probe], "startup")["wall"])
    startup_s = statistics.median(startup)
    run.startup_s = startup_s
    log(f"one-file process: {startup_s:.2f} s (median of 3)")

    chunks = [("chunk", order[i:i + a.chunk], f"chunk{i // a.chunk}") for i in range(0, len(order), a.chunk)]
    run.run_all(chunks)

    # Time the files around the longest pauses in output, one process each.
    slow_candidates = []
    for gap, rid, window in sorted(run.gaps, key=lambda g: -g[0])[: a.slow_rerun]:
        slow_candidates += [f for f in window if f not in run.singles_elapsed and f not in slow_candidates]
    if slow_candidates and not run.stop_new_chunks:
        log(f"timing {len(slow_candidates)} files around the {a.slow_rerun} longest pauses, one process each")
        for f in slow_candidates:
            r = run.run_cli([f], "timing")
            if r["status"] in (0, 1) and not r["hung"]:
                run.singles_elapsed[f] = r["wall"]
    wall = time.monotonic() - t_start

    # -- the results
    all_records = []
    err_groups = collections.OrderedDict()
    raw_groups, skia_groups, flag_groups = {}, {}, {}
    classified = errors = 0
    kinds = collections.defaultdict(collections.Counter)
    culprits = {d["file"] for d in run.deaths + run.hangs if d.get("file")} | set(run.unconfirmed)
    for f in order:
        k = kind_of(f)
        if f in run.records:
            rec, rid = run.records[f]
            all_records.append(dict(rec, run=rid))
            if "top" in rec:
                classified += 1
                kinds[k]["classified"] += 1
            else:
                errors += 1
                kinds[k]["error"] += 1
                norm, flags, raw, skia = analyse_error(f, rec["error"])
                g = err_groups.setdefault(norm, dict(count=0, example=rec["error"], files=[]))
                g["count"] += 1
                if len(g["files"]) < 3:
                    g["files"].append(f)
                for name in raw:
                    rg = raw_groups.setdefault(name, dict(count=0, files=[], texts=collections.Counter()))
                    rg["count"] += 1
                    rg["texts"][norm] += 1
                    if len(rg["files"]) < 3:
                        rg["files"].append(f)
                for name in set(skia):
                    sg = skia_groups.setdefault(name, dict(count=0, files=[]))
                    sg["count"] += 1
                    if len(sg["files"]) < 3:
                        sg["files"].append(f)
                for fl in flags:
                    fg = flag_groups.setdefault(fl, dict(count=0, files=[]))
                    fg["count"] += 1
                    if len(fg["files"]) < 3:
                        fg["files"].append(f)
        elif f in culprits:
            kinds[k]["death" if any(d.get("file") == f for d in run.deaths) else "hang"] += 1
        else:
            kinds[k]["no record"] += 1
    with open(os.path.join(a.out, "records.jsonl"), "w") as fo:
        for rec in all_records:
            fo.write(json.dumps(rec) + "\n")

    # good images: the same as alone
    good_report = dict(files=len(good), compared=0, max_abs_diff=0.0, mismatches=[])
    for g in good:
        if g not in run.records or g not in baseline:
            good_report["mismatches"].append(dict(file=g, problem="no record in one of the runs"))
            continue
        a_rec, b_rec = run.records[g][0], baseline[g]
        good_report["compared"] += 1
        if ("top" in a_rec) != ("top" in b_rec):
            good_report["mismatches"].append(dict(file=g, problem="classified in one run only", with_corpus=a_rec, alone=b_rec))
        elif "top" in a_rec:
            d = compare_top(a_rec["top"], b_rec["top"], a.tolerance)
            if d is None or d > a.tolerance:
                good_report["mismatches"].append(dict(file=g, problem=f"probabilities differ (max {d})", with_corpus=a_rec["top"], alone=b_rec["top"]))
            if d is not None:
                good_report["max_abs_diff"] = max(good_report["max_abs_diff"], d)
        elif a_rec["error"] != b_rec["error"]:
            good_report["mismatches"].append(dict(file=g, problem="different errors", with_corpus=a_rec["error"], alone=b_rec["error"]))
    good_report["good_errors"] = sorted({baseline[g]["error"].replace(g, "PATH") for g in good if g in baseline and "error" in baseline[g]})

    slowest = sorted(((w - startup_s, f) for f, w in run.singles_elapsed.items()), reverse=True)[:10]
    rss = sorted(run.chunk_rss, reverse=True)
    not_run = [f for f in order if f not in run.records and f not in culprits]
    summary = dict(
        decoder=a.decoder, corpus=a.corpus, cli=a.cli, weights=a.weights,
        options=dict(workers=a.workers, jobs=a.jobs, chunk=a.chunk, batch=a.batch, top=a.top, hang_seconds=a.hang_seconds,
                     stall_seconds=a.stall_seconds,
                     extra_args=a.extra_args, time_limit_min=a.time_limit),
        files=len(order), good=len(good), classified=classified, error_records=errors,
        partial=bool(run.not_run or run.unconfirmed), files_not_run=len(not_run),
        deaths=run.deaths, hangs=run.hangs, slow_over_stall_limit=run.stalls, false_alarms=run.false_alarms,
        stalled_unconfirmed=[dict(file=f, kind=kind_of(f)) for f in run.unconfirmed],
        lost=run.lost, duplicates=run.duplicates, out_of_order=run.out_of_order, malformed=run.malformed[:50],
        malformed_count=len(run.malformed),
        processes=run.run_id, one_file_process_seconds=round(startup_s, 3),
        wall_seconds=round(wall, 1),
        peak_rss_kb_max=rss[0][0] if rss else None,
        peak_rss_top_chunks=[dict(rss_kb=x[0], run=x[1], files=x[2]) for x in rss[:5]],
        peak_rss_kb_median=statistics.median([x[0] for x in rss]) if rss else None,
        error_messages=[dict(text=k, count=v["count"], example=v["example"], files=v["files"])
                        for k, v in sorted(err_groups.items(), key=lambda kv: -kv[1]["count"])[:30]],
        distinct_error_messages=len(err_groups),
        raw_exception_messages={k: dict(count=v["count"], files=v["files"], texts=v["texts"].most_common(5))
                                for k, v in sorted(raw_groups.items(), key=lambda kv: -kv[1]["count"])},
        skia_names={k: v for k, v in sorted(skia_groups.items(), key=lambda kv: -kv[1]["count"])},
        error_text_flags=flag_groups,
        good_images=good_report,
        slowest_files=[dict(file=f, kind=kind_of(f), seconds=round(s, 2)) for s, f in slowest],
        by_kind={k: dict(v) for k, v in sorted(kinds.items())},
    )
    with open(os.path.join(a.out, "summary.json"), "w") as fo:
        json.dump(summary, fo, indent=1)
    with open(os.path.join(a.out, "summary.md"), "w") as fo:
        fo.write(markdown(summary))
    fail = (run.deaths or run.hangs or run.unconfirmed or run.lost or run.duplicates or run.out_of_order or run.malformed
            or good_report["mismatches"])
    log(f"{len(order)} files: {classified} classified, {errors} error records, {len(run.deaths)} deaths, "
        f"{len(run.hangs)} hangs, {len(run.stalls)} slow, {len(run.lost)} lost, {len(run.duplicates)} duplicated; good max |diff| "
        f"{good_report['max_abs_diff']:.2e}, {len(good_report['mismatches'])} mismatches; {wall / 60:.1f} min; {a.out}")
    if summary["partial"]:
        return 3
    return 1 if fail else 0


def markdown(s):
    o = []
    w = o.append
    w(f"# Corpus run: decoder `{s['decoder']}`\n")
    w(f"Corpus `{s['corpus']}`, {s['files']} files ({s['good']} good). Options: {json.dumps(s['options'])}.\n")
    if s["partial"]:
        w(f"**Partial:** the time limit stopped the run; {s['files_not_run']} files were not run.\n")
    w("| measure | value |\n|---|---|")
    rows = [("files", s["files"]), ("classified", s["classified"]), ("error records", s["error_records"]),
            ("deaths", len(s["deaths"])), ("hangs", len(s["hangs"])), ("slow files (over the stall limit)", len(s["slow_over_stall_limit"])),
            ("stall false alarms", len(s["false_alarms"])),
            ("stalled alone, not confirmed (time limit)", len(s["stalled_unconfirmed"])),
            ("lost records", len(s["lost"])),
            ("duplicated records", len(s["duplicates"])), ("out of order", len(s["out_of_order"])),
            ("malformed lines", s["malformed_count"]), ("files not run", s["files_not_run"]),
            ("good images compared", s["good_images"]["compared"]),
            ("good images: max abs diff", f"{s['good_images']['max_abs_diff']:.3g}"),
            ("good images: mismatches", len(s["good_images"]["mismatches"])),
            ("peak RSS, largest chunk", f"{(s['peak_rss_kb_max'] or 0) / 1024:.0f} MiB"),
            ("peak RSS, median chunk", f"{(s['peak_rss_kb_median'] or 0) / 1024:.0f} MiB"),
            ("processes", s["processes"]), ("one-file process", f"{s['one_file_process_seconds']} s"),
            ("wall time", f"{s['wall_seconds'] / 60:.1f} min")]
    for k, v in rows:
        w(f"| {k} | {v} |")
    w("")
    for title, key in (("Deaths", "deaths"), ("Hangs", "hangs"), ("Slow files (finish alone, after longer than the stall limit)", "slow_over_stall_limit")):
        w(f"## {title}\n")
        if not s[key]:
            w("None.\n")
            continue
        for d in s[key]:
            first = next((l for l in d.get("stderr", "").splitlines() if "xception" in l or "rror" in l), "")
            who = d["file"] or f"not reproduced alone (suspects: {len(d['suspects'])} files from {d['suspects'][0]})"
            if key == "slow_over_stall_limit":
                w(f"- `{who}` ({d['kind']}): {d['seconds']} s alone")
                continue
            w(f"- `{who}` ({d['kind']}): status {d['status']}{', signal ' + str(d['signal']) if d.get('signal') else ''}"
              f"{' — ' + first.strip()[:200] if first else ''}")
        w("")
    if s["lost"] or s["duplicates"] or s["out_of_order"] or s["malformed_count"]:
        w("## Record problems\n")
        for key in ("lost", "duplicates", "out_of_order"):
            for x in s[key][:20]:
                w(f"- {key}: {json.dumps(x)}")
        for x in s["malformed"][:10]:
            w(f"- malformed: {json.dumps(x)}")
        w("")
    w(f"## Error messages ({s['distinct_error_messages']} distinct after replacing numbers by N; top 30)\n")
    w("| count | message | example file |\n|---:|---|---|")
    for e in s["error_messages"]:
        w(f"| {e['count']} | {e['text'][:220].replace('|', '/')} | `{os.path.basename(e['files'][0])}` |")
    w("")
    w("## Messages that look like raw exception texts\n")
    if not s["raw_exception_messages"]:
        w("None.\n")
    for k, v in s["raw_exception_messages"].items():
        w(f"- **{k}**: {v['count']} records, e.g. " + ", ".join(f"`{os.path.basename(f)}`" for f in v["files"]))
        for text, n in v["texts"]:
            w(f"  - {n} × {text[:200]}")
    w("")
    w("## Skia result names in messages\n")
    if not s["skia_names"]:
        w("None.\n")
    for k, v in s["skia_names"].items():
        w(f"- `{k}`: {v['count']} records, e.g. " + ", ".join(f"`{os.path.basename(f)}`" for f in v["files"]))
    w("")
    if s["error_text_flags"]:
        w("## Other problems with error texts\n")
        for k, v in s["error_text_flags"].items():
            w(f"- {k}: {v['count']}, e.g. " + ", ".join(f"`{os.path.basename(f)}`" for f in v["files"]))
        w("")
    w("## Good images\n")
    g = s["good_images"]
    w(f"{g['compared']} of {g['files']} compared with a run over good/ alone; max |diff| {g['max_abs_diff']:.3g}; "
      f"{len(g['mismatches'])} mismatches.")
    for m in g["mismatches"][:20]:
        w(f"- `{m['file']}`: {m['problem']}")
    if g["good_errors"]:
        w("Good images this decoder refuses (in both runs): " + "; ".join(g["good_errors"]))
    w("")
    w("## Slowest files (one process each, minus the one-file process time)\n")
    w("| seconds | file | kind |\n|---:|---|---|")
    for x in s["slowest_files"]:
        w(f"| {x['seconds']} | `{os.path.basename(x['file'])}` | {x['kind']} |")
    w("")
    w("## Peak RSS, largest chunks\n")
    for x in s["peak_rss_top_chunks"]:
        w(f"- run {x['run']}: {x['rss_kb'] / 1024:.0f} MiB ({x['files']} files)")
    w("")
    w("## Outcome by kind (classified silently = the decoder accepted the mutated file)\n")
    w("| kind | classified | error | death | hang |\n|---|---:|---:|---:|---:|")
    for k, v in s["by_kind"].items():
        w(f"| {k} | {v.get('classified', 0)} | {v.get('error', 0)} | {v.get('death', 0)} | {v.get('hang', 0)} |")
    return "\n".join(o) + "\n"


if __name__ == "__main__":
    sys.exit(main())
