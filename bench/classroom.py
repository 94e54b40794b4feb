"""A classroom on one Space (issue #24): N students (default 30) on the real app through gradio_client.

    python bench/classroom.py [--students 30] [--seconds 120] [--baseline 274d361]

Starts `python app.py` on 127.0.0.1, waits for both compiles, then
1. the lecture-start burst: every student asks for the default slider row within one second;
2. the class: each student thinks 3–8 s, then sends one request on either model, from this mix:
   50 % a slider row at a w on a 0.5 grid (0 … 8) with the default seeds, 20 % the same with a random first seed
   (a request nobody else sends), 20 % the default grid, 10 % the default slider row.
It reports per request kind and model p50, p95 and max latency, requests served per second, errors, the app's cache
hit rate and coalescing (its /serving_stats) and the app's RSS. --baseline runs a git revision's app (today's release)
the same way first, in a temporary worktree, and prints the ratios.
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import header  # noqa: E402
from bench.latency import wait_compiled, wait_prefilled  # noqa: E402
from core.registry import model_card  # noqa: E402

MODELS = ("digits", "emoji")
SAMPLER = {m: model_card(m).default_sampler for m in MODELS}  # each model's default sampler (its card), as the UI sets it


def grid_default(model: str) -> tuple:
    """The Guidance sweep tab's default grid on the model."""
    return "single class", 3, "0, 0.1, 0.3, 1, 2, 4", 6, 0, SAMPLER[model], 0.3, 10, model


def row(w: float, seed: int, model: str) -> tuple:
    """A slider row: w, class, first seed, sampler, T, model (the slider's defaults but w and the seed)."""
    return w, 3, seed, SAMPLER[model], 10, model


@dataclass(frozen=True)
class Result:
    kind: str
    model: str
    seconds: float
    error: str = ""
    at: float = 0.0  # when it was sent (perf_counter)


def request(rng: random.Random) -> tuple[str, str, tuple, str]:
    """(kind, model, args, api_name) of one student's request, drawn from the mix."""
    model, r = rng.choice(MODELS), rng.random()
    if r < 0.5:
        return "slider row, shared", model, row(0.5 * rng.randint(0, 16), 0, model), "/slider_row"
    if r < 0.7:
        return "slider row, unique seed", model, row(0.5 * rng.randint(0, 16), rng.randrange(10**6, 10**9), model), \
            "/slider_row"
    if r < 0.9:
        return "default grid", model, grid_default(model), "/guidance_grid"
    return "slider row, default", model, row(0.0, 0, model), "/slider_row"


def timed(client, kind: str, model: str, args: tuple, api: str) -> Result:
    t = time.perf_counter()
    try:
        client.predict(*args, api_name=api)
        return Result(kind, model, time.perf_counter() - t, at=t)
    except Exception as e:  # an error is a result to count, not a crash of the benchmark
        return Result(kind, model, time.perf_counter() - t, f"{type(e).__name__}: {str(e)[:80]}", t)


def student(url: str, seed: int, until: float, out: list, lock: threading.Lock) -> None:
    from gradio_client import Client

    rng = random.Random(seed)
    client = Client(url, analytics_enabled=False, download_files=False, verbose=False)
    time.sleep(rng.uniform(0, 8))  # students arrive over the first seconds, not in lockstep
    while time.perf_counter() < until:
        res = timed(client, *request(rng))
        with lock:
            out.append(res)
        time.sleep(rng.uniform(3, 8))  # thinking


def burst(url: str, n: int) -> list[Result]:
    """n students ask for the default slider row of digits within one second."""
    from gradio_client import Client

    clients = [Client(url, analytics_enabled=False, download_files=False, verbose=False) for _ in range(n)]
    out, lock = [], threading.Lock()
    start = time.perf_counter() + 1.0

    def go(k: int) -> None:
        time.sleep(max(0.0, start + k / n - time.perf_counter()))
        res = timed(clients[k], "burst", "digits", row(0.0, 0, "digits"), "/slider_row")
        with lock:
            out.append(res)

    threads = [threading.Thread(target=go, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def report(results: list[Result], seconds: float, start: float) -> dict:
    """Print the table; return the summary figures."""
    print("| request | model | n | p50 | p95 | max | errors |")
    print("|---|---|---|---|---|---|---|")
    for kind in sorted({r.kind for r in results}):
        for model in MODELS:
            rs = [r for r in results if r.kind == kind and r.model == model]
            ok = [r.seconds for r in rs if not r.error]
            if rs and ok:
                print(f"| {kind} | {model} | {len(rs)} | {pct(ok, .5):.2f} s | {pct(ok, .95):.2f} s | {max(ok):.2f} s | "
                      f"{sum(1 for r in rs if r.error)} |")
    rows = [r.seconds for r in results if r.kind.startswith("slider") and not r.error]
    unique = [r.seconds for r in results if r.kind == "slider row, unique seed" and not r.error]
    errors = [r.error for r in results if r.error]
    summary = {"served_per_s": sum(1 for r in results if not r.error) / seconds, "errors": len(errors),
               "rows_p50": pct(rows, .5), "rows_p95": pct(rows, .95), "unique_p95": pct(unique, .95)}
    print(f"served {summary['served_per_s']:.2f} requests/s; errors {len(errors)}"
          + (f" (first: {errors[0]})" if errors else ""))
    print(f"slider rows, all: p50 {summary['rows_p50']:.2f} s [goal ≤ 1.0], p95 {summary['rows_p95']:.2f} s [goal ≤ 2.5]; "
          f"unique-seed rows: p95 {summary['unique_p95']:.2f} s [goal ≤ 5]")
    for lo, hi in ((0, 30), (30, seconds)):  # the class's arrival (every cache cold) and after it
        part = [r.seconds for r in results if r.kind.startswith("slider") and not r.error and lo <= r.at - start < hi]
        if part:
            print(f"slider rows sent in [{lo:.0f}, {hi:.0f}) s: n {len(part)}, p50 {pct(part, .5):.2f} s, "
                  f"p95 {pct(part, .95):.2f} s, max {max(part):.2f} s")
    return summary


def rss_mb(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, in MB."""
    vals = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                vals[line.split(":")[0]] = int(line.split()[1]) / 1024
    return vals.get("VmRSS", float("nan")), vals.get("VmHWM", float("nan"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_app(cwd: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    t0 = time.perf_counter()
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}", timeout=2) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.3)
        if time.perf_counter() - t0 > 180 or proc.poll() is not None:
            proc.kill()
            raise SystemExit(f"the app in {cwd} did not start")


def run_class(title: str, cwd: Path, port: int, students: int, seconds: float) -> dict:
    print(f"\n## {title}")
    proc = start_app(cwd, port)
    url = f"http://127.0.0.1:{port}"
    try:
        from gradio_client import Client

        c = Client(url, analytics_enabled=False, download_files=False, verbose=False)
        for model in MODELS:  # load both models (and start their compiles) as a first visitor would
            c.predict(model, api_name="/model_card")
        wait_compiled(c)
        wait_prefilled(c)
        b = burst(url, students)
        ok = [r.seconds for r in b if not r.error]
        print(f"lecture-start burst: {students} identical default rows within 1 s: all served within "
              f"{max(ok) if ok else float('nan'):.2f} s, {sum(1 for r in b if r.error)} errors [goal: all within 2 s]")
        out, lock = [], threading.Lock()
        cpu0, own0 = cpu_seconds(proc.pid), time.process_time()
        start = time.perf_counter()
        until = start + seconds
        threads = [threading.Thread(target=student, args=(url, k, until, out, lock)) for k in range(students)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        summary = report(out, seconds, start)
        print(f"CPU over the class: the app {cpu_seconds(proc.pid) - cpu0:.0f} s, the students' clients "
              f"{time.process_time() - own0:.0f} s, of {2 * seconds:.0f} core-seconds on 2 cores")
        rss, hwm = rss_mb(proc.pid)
        summary["rss_mb"] = rss
        print(f"app RSS at the end {rss:.0f} MB (peak {hwm:.0f} MB) [goal ≤ 1,500 MB]")
        try:
            print(f"serving stats: {c.predict(api_name='/serving_stats')}")
        except Exception as e:  # today's release has no such endpoint
            print(f"serving stats: not available ({type(e).__name__})")
        return summary
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--students", type=int, default=30)
    ap.add_argument("--seconds", type=float, default=120.0)
    ap.add_argument("--port", type=int, default=7871)
    ap.add_argument("--baseline", default=None, help="a git revision to run the same way first (today's release)")
    a = ap.parse_args()
    header(f"classroom: {a.students} students for {a.seconds:.0f} s through gradio_client")
    base = None
    if a.baseline:
        tree = Path(tempfile.mkdtemp(prefix="cfg_release_")) / "tree"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), a.baseline], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            base = run_class(f"today's release ({a.baseline})", tree, a.port, a.students, a.seconds)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
    new = run_class("this tree", ROOT, a.port, a.students, a.seconds)
    if base:
        print(f"\nthroughput: {new['served_per_s'] / base['served_per_s']:.2f}× the release's "
              f"({new['served_per_s']:.2f} vs {base['served_per_s']:.2f} requests/s) [goal ≥ 2×]; slider-row p50 "
              f"{base['rows_p50'] / new['rows_p50']:.1f}× faster, p95 {base['rows_p95'] / new['rows_p95']:.1f}× faster")


if __name__ == "__main__":
    main()
