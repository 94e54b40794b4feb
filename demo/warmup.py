"""The compile warm-up of one model: the app serves eagerly at once and swaps the compiled network in when ready.

On the CPU the network is compiled ahead of time in a child process at the lowest priority (core.aot), so the eager
path keeps both cores and the GIL while it serves; a package left by an earlier start loads in milliseconds. On CUDA,
torch.compile runs in a background thread (the host has cores to spare there).
"""
from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import ContextManager

import torch

from core import aot
from core.pipeline import Pipeline


class Warmup:
    """state: 'not started', 'compiling', 'compiled (…)' or 'eager (<reason>)'; seconds: how long it took.

    The swap happens under the model's lock, so no sampling run mixes eager and compiled.
    """

    def __init__(self, pipe: Pipeline, enabled: bool = True, cache: Path = aot.AOT_CACHE):
        self.pipe = pipe
        self.enabled = enabled
        self.cache = Path(cache)
        self.state = "not started"
        self.seconds = float("nan")
        self.done = threading.Event()
        self._lock = threading.Lock()

    def start(self, swap_lock: ContextManager) -> None:
        """Start once; later calls do nothing."""
        with self._lock:
            if self.state != "not started":
                return
            if not self.enabled:
                self.state = "eager (CFG_COMPILE=0)"
                self.done.set()
                return
            self.state = "compiling"
        threading.Thread(target=self._work, args=(swap_lock,), name="compile-warmup", daemon=True).start()

    def _work(self, swap_lock: ContextManager) -> None:
        t = time.perf_counter()
        try:
            if self.pipe.device.type == "cuda":
                self.state = self.pipe.model.enable_compile(swap_lock=swap_lock)
            else:
                self.state = self._ahead_of_time(swap_lock)
        except Exception as e:  # a broken compiler or package: keep serving eagerly
            self.state = f"eager ({type(e).__name__}: {str(e)[:120]})"
        finally:
            self.seconds = time.perf_counter() - t
            self.done.set()

    def _ahead_of_time(self, swap_lock: ContextManager) -> str:
        model, card = self.pipe.model, self.pipe.card
        threads = torch.get_num_threads()
        path = aot.package_path(card.sha256, model.chunk, self.pipe.device, threads, self.cache)
        how = "AOTInductor, cached package"
        if not path.is_file():
            log = path.with_suffix(".log")
            log.parent.mkdir(parents=True, exist_ok=True)
            proc = aot.spawn_compile(card.name, model.chunk, path, threads, card.assets, log)
            if proc.wait() != 0 or not path.is_file():
                tail = log.read_text(errors="replace")[-200:] if log.is_file() else ""
                return f"eager (ahead-of-time compile failed: {' '.join(tail.split())[-120:]})"
            how = "AOTInductor, compiled in a child process"
        model.use_compiled(aot.load_package(path), swap_lock)
        return f"compiled ({how})"

    def wait(self, timeout: float | None = None) -> str:
        """Block until the warm-up has finished (or was disabled); returns its state."""
        self.done.wait(timeout)
        return self.state
