"""End-to-end latencies of the real app through gradio_client (cold start, slider row, grid, first curve point, RSS).

    python bench/latency.py [--runs 5] [--port 7870]    # steady state, after the compile warm-up
    python bench/latency.py --cold [--seconds 90]       # every slider call of the first 90 s, on empty compile caches

Starts `python app.py` as a subprocess on 127.0.0.1, so the cold start includes importing gradio and torch. --cold
gives the app a fresh, empty ahead-of-time package cache and inductor cache, as a restarted Hugging Face Space has.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import header  # noqa: E402
from core.registry import model_card, shipped_models  # noqa: E402


def rss_mb(pid: int) -> float:
    """Peak resident set size (VmHWM) of a process, in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def stats(ts: list[float]) -> str:
    return f"median {statistics.median(ts):.2f} s (min {min(ts):.2f}, max {max(ts):.2f}, n={len(ts)})"


def network_state(c, model: str = "digits") -> str:
    """The app's 'Network:' line of the model card (the compile warm-up's state)."""
    return c.predict(model, api_name="/model_card").rsplit("Network:", 1)[-1].strip()


def wait_compiled(c, timeout: float = 600.0) -> None:
    t = time.perf_counter()
    for model in shipped_models():
        while network_state(c, model) == "compiling" and time.perf_counter() - t < timeout:
            time.sleep(1)
        print(f"network of {model}: {network_state(c, model)} (waited {time.perf_counter() - t:.0f} s)")


def wait_prefilled(c, timeout: float = 120.0) -> None:
    """Wait until the app has sampled every model's default grid and scrub strip (its rows: the default slider row at
    every w of the strip) and the exact lab's default curves into its caches (demo.handlers.prefill, after the compile),
    so that the figures below do not queue behind it, as on a Space that started before the class came. An app without
    the flag is not waited for."""
    t = time.perf_counter()
    while time.perf_counter() - t < timeout:
        try:
            stats = c.predict(api_name="/serving_stats")
        except Exception as e:  # an older release has no such endpoint
            print(f"prefill: not offered ({type(e).__name__})")
            return
        if all(stats.get(m, {}).get("prefilled", True) for m in [*shipped_models(), "exact_lab"]):
            print(f"prefill done (waited {time.perf_counter() - t:.0f} s)")
            return
        time.sleep(0.5)
    print(f"prefill: not done after {timeout:.0f} s")


def _timed(c, api: str, args: tuple) -> float:
    t = time.perf_counter()
    c.predict(*args, api_name=api)
    return time.perf_counter() - t


def _streamed(c, api: str, args: tuple) -> list[float]:
    """The waits between a streaming endpoint's updates: to the first, then from each to the next."""
    t, waits = time.perf_counter(), []
    for _ in c.submit(*args, api_name=api):
        waits.append(time.perf_counter() - t)
        t = time.perf_counter()
    return waits


def exact_lab(c, runs: int) -> None:
    """The exact 2-D lab (#23) at the tab's defaults (N = 2,000, T = 64), each call a request not made before (cold:
    another w or N per run), and again (a hit in the lab's cache); the curves that start-up measured are hits."""
    ws = [3.1 + 0.1 * i for i in range(runs)]  # the slider moved: w = 0 and 1 beside it (the tab's defaults)
    cold = [_timed(c, "/toy_lab_w", ("rare-mode", 0, "0, 1", "CFG", 2000, 64, "ddim", False, 0, w)) for w in ws]
    print(f"exact 2-D lab, w slider released (/toy_lab_w: 0, 1 and w), cold: {stats(cold)}  [goal ≤ 0.5 s]")
    again = [_timed(c, "/toy_lab_w", ("rare-mode", 0, "0, 1", "CFG", 2000, 64, "ddim", False, 0, w)) for w in ws]
    print(f"exact 2-D lab, w slider released, asked again: {stats(again)}")
    field = [_timed(c, "/toy_field", ("overlap", 0, 3.0 + 0.1 * i, 32, 64, "ddim")) for i in range(runs)]
    print(f"exact 2-D lab /toy_field (T=64): {stats(field)}  [goal ≤ 0.5 s]")
    curves = [_timed(c, "/toy_curves", (p, 0, 2000, 64, "ddim")) for p in ("overlap", "separated", "rare-mode")]
    print(f"exact 2-D lab /toy_curves at the defaults (measured at start-up): {stats(curves)}  [goal ≤ 0.5 s]")
    cold = [_streamed(c, "/toy_curves", ("overlap", 0, 2000 - 10 * (i + 1), 64, "ddim")) for i in range(runs)]
    print(f"exact 2-D lab /toy_curves, N=1,990…, cold (26 points, every method), first method shown: "
          f"{stats([t[0] for t in cold])}; longest wait between updates: {stats([max(t) for t in cold])}  "
          f"[goal ≤ 0.5 s]; the last method shown: {stats([sum(t) for t in cold])}")


def cold_slider_calls(c, seconds: float) -> None:
    """Slider → row of 8 (DDIM T = 10) back to back from the moment the app serves, with the warm-up's state."""
    t0 = time.perf_counter()
    lat = []
    while time.perf_counter() - t0 < seconds:
        t = time.perf_counter()
        c.predict(0.5 + len(lat) % 7, 3, 0, "ddim", 10, api_name="/slider_row")
        lat.append(time.perf_counter() - t)
        print(f"  t = {t - t0:5.1f} s: slider → row of 8 {lat[-1]:.2f} s  (network: {network_state(c)})", flush=True)
        time.sleep(0.5)
    print(f"cold: {len(lat)} slider calls in the first {seconds:.0f} s: max {max(lat):.2f} s, median "
          f"{statistics.median(lat):.2f} s  [goal: every call ≤ 1.5 s]")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--port", type=int, default=7870)
    ap.add_argument("--cold", action="store_true", help="empty compile caches; report every slider call of the first --seconds")
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--lab", action="store_true", help="only the exact 2-D lab's figures")
    a = ap.parse_args()
    header("end-to-end latency through gradio_client" + (" (cold caches)" if a.cold else ""))
    env = dict(os.environ, GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(a.port))
    if a.cold:
        fresh = Path(tempfile.mkdtemp(prefix="cfg_cold_"))
        env.update(CFG_AOT_CACHE=str(fresh / "aot"), TORCHINDUCTOR_CACHE_DIR=str(fresh / "inductor"))
    url = f"http://127.0.0.1:{a.port}"
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(0.2)
            if time.perf_counter() - t0 > 120:
                raise SystemExit("app did not start within 120 s")
        cold = time.perf_counter() - t0
        print(f"cold start to serving: {cold:.2f} s  [goal ≤ 15 s]")
        from gradio_client import Client

        c = Client(url, analytics_enabled=False, download_files=False, verbose=False)
        if a.cold:
            cold_slider_calls(c, a.seconds)
            return
        wait_compiled(c)  # the figures below are steady state
        wait_prefilled(c)
        if a.lab:
            exact_lab(c, a.runs)
            return
        sampler = {m: model_card(m).default_sampler for m in shipped_models()}  # as the app's sampler control sets it
        # each model's rows at w values the start-up prefill has not sampled (the default model, digits, first)
        rows = {m: [_timed(c, "/slider_row", (0.55 + i, 3, 0, sampler[m], 10, m)) for i in range(a.runs)]
                for m in shipped_models()}
        grids, firsts = [], []
        for i in range(a.runs):
            t = time.perf_counter()
            c.predict("single class", 3, "0, 0.1, 0.3, 1, 2, 4", 6, i, "ddim", 0.3, 10, api_name="/guidance_grid")
            grids.append(time.perf_counter() - t)
        exact_lab(c, a.runs)  # before the curves below, whose cancelled jobs may still finish a batch
        for i in range(a.runs):
            t = time.perf_counter()
            job = c.submit("0, 0.1, 0.3, 0.5, 1, 2, 4", 500, 10, "ddim", api_name="/live_curves")
            for _ in job:
                firsts.append(time.perf_counter() - t)
                break
            job.cancel()
            time.sleep(1)
        for model, ts in rows.items():
            print(f"slider → row of 8, {model} ({sampler[model]} T=10): {stats(ts)}  [goal ≤ 1.0 s]")
        print(f"6 w × 6 seed grid (DDIM T=10): {stats(grids)}  [goal ≤ 3 s]")
        print(f"first FID/IS point (7 w, N=10): {stats(firsts)}  [goal ≤ 15 s]")
        t = time.perf_counter()
        job = c.submit("0, 0.1, 0.3, 0.5, 1, 2, 4", 500, 10, "ddim", api_name="/live_curves")
        last = None
        for out in job:
            last = out
        print(f"7 w × 500 samples curve (DDIM T=10): {time.perf_counter() - t:.1f} s ({last[1] if last else '?'})  [goal ≤ 180 s]")
        print(f"peak RSS of the app: {rss_mb(proc.pid):.0f} MB  [goal ≤ 1536 MB]")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
