"""CFG Explorer: builds the Gradio UI from demo/ and launches it (HF Spaces entry point)."""
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.checkpoint import WeightsError  # noqa: E402
from demo.ui import build_demo, launch_kwargs  # noqa: E402

try:
    demo = build_demo()
except WeightsError as e:  # missing / truncated / corrupt weights: one clear line, no traceback
    sys.exit(f"CFG Explorer cannot start: {e}")

if __name__ == "__main__":
    demo.launch(**launch_kwargs())
