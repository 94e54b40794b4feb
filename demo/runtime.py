"""The app's state in one object: for each model, the loaded pipeline, its lock, the compile warm-up and the running
live curves; and the folder of files the app hands out (animations, CSVs), kept to a bounded size.

Handlers receive the Runtime as their first argument (ui.py binds it); nothing here is a module-level global.
"""
from __future__ import annotations

import os
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from core.checkpoint import ASSETS
from core.pipeline import Pipeline, load_pipeline
from core.registry import DEFAULT_MODEL, ModelCard, model_card, shipped_models
from core.sampling import generate_grids
from demo.batcher import Coalescer, ModelLock
from demo.cache import ResultCache
from demo.warmup import Warmup

TOY_CACHE_BYTES = 64 * 2**20  # the exact lab's results: a curve of 26 points at N = 2,000 holds 0.8 MB


class OutputFiles:
    """A private temp folder that keeps only the newest `keep` files: bounded disk use, however many requests come."""

    def __init__(self, keep: int = 48, root: Path | None = None):
        assert keep >= 1, keep
        self.root = Path(root) if root is not None else Path(tempfile.mkdtemp(prefix="cfg_outputs_"))
        self.root.mkdir(parents=True, exist_ok=True)
        self.keep = keep
        self._lock = threading.Lock()
        self._count = 0

    def new(self, name: str) -> Path:
        """A fresh path for a file called `name`; the oldest files beyond `keep` − 1 are removed first."""
        with self._lock:
            self._count += 1
            files = sorted(self.root.iterdir(), key=lambda p: p.name)  # names start with the request counter
            for old in files[: max(0, len(files) - self.keep + 1)]:
                old.unlink(missing_ok=True)  # only files are ever made here
            return self.root / f"{self._count:08d}_{name}"

    def count(self) -> int:
        return sum(1 for _ in self.root.iterdir())


@dataclass
class ModelSlot:
    """One model's state in the app."""

    pipe: Pipeline
    warmup: Warmup
    lock: ModelLock = field(default_factory=ModelLock)  # one sampling job at a time; short requests first
    curves: int = 0  # live-curve generators running now (observable by tests and load checks)
    curves_lock: threading.Lock = field(default_factory=threading.Lock)
    trajectories: dict = field(default_factory=dict)  # the "Inside one step" tab's recent trajectories
    data_stats: dict = field(default_factory=dict)  # statistics of the model's real data, computed on first use
    results: ResultCache = field(default_factory=ResultCache)  # sampled grids, keyed by their full request
    gate: ModelLock = field(default_factory=ModelLock)  # the cores, shared by every model's short requests
    batcher: Coalescer | None = None  # concurrent grid requests, sampled together (set in __post_init__)
    prefilled: threading.Event = field(default_factory=threading.Event)  # set once demo.handlers.prefill is done

    def __post_init__(self):
        def run(grids, sampling, noise):
            return generate_grids(self.pipe.model, grids, sampling, noise, self.pipe.guide_for(sampling.opts.method))

        self.batcher = Coalescer(run, self.lock, gate=self.gate)

    @property
    def card(self) -> ModelCard:
        return self.pipe.card


class Runtime:
    """Loads models on first use (sha256-checked), starts each one's compile warm-up, and owns the output folder."""

    def __init__(self, assets: Path = ASSETS, device: str = "auto", compile: bool | None = None,
                 outputs: OutputFiles | None = None):
        self.assets = Path(assets)
        self.device = device
        self.compile = os.environ.get("CFG_COMPILE", "1") != "0" if compile is None else compile
        self.names = shipped_models(self.assets)
        self.outputs = outputs if outputs is not None else OutputFiles()
        self._slots: dict[str, ModelSlot] = {}
        self._lock = threading.Lock()
        self._gate = ModelLock()  # one sampling run of short requests at a time, whichever the model
        # the exact 2-D lab's measured grids ((row, samples) per w), keyed by their full request: about 80 curves
        self.toy_results = ResultCache(TOY_CACHE_BYTES, size_of=lambda rows: sum(8 * x.nelement() for _, x in rows))
        # the identity check's largest |x_CG − x_CFG| per request (a float each: a few bytes)
        self.toy_identity = ResultCache(2**20, size_of=lambda gap: 64)
        self.closing = threading.Event()  # set at exit: background work (the prefill) stops after its current step
        self.toy_prefilled = threading.Event()  # set once demo.handlers.prefill has measured the lab's default curves

    @property
    def default(self) -> str:
        return DEFAULT_MODEL if DEFAULT_MODEL in self.names else self.names[0]

    def card(self, name: str) -> ModelCard:
        """The model card, without loading the weights."""
        return self.slot(name).card if name in self._slots else model_card(name, self.assets)

    def slot(self, name: str) -> ModelSlot:
        """The model's slot, loading it (and starting its warm-up) on first use; unknown names raise."""
        with self._lock:
            if name not in self._slots:
                pipe = load_pipeline(name, self.device, self.assets)
                self._slots[name] = ModelSlot(pipe, Warmup(pipe, enabled=self.compile), gate=self._gate)
            return self._slots[name]

    def loaded(self) -> list[str]:
        """The models loaded so far."""
        with self._lock:
            return list(self._slots)

    def load_all(self) -> None:
        """Load every shipped model (at start-up, so a corrupt file fails there, clearly) and start the warm-ups."""
        for name in self.names:
            self.slot(name).warmup.start(self.slot(name).lock)
