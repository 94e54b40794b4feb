"""CFG Explorer: builds the Gradio UI from demo/ and launches it (HF Spaces entry point)."""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from demo.ui import build_demo, launch_kwargs  # noqa: E402

demo = build_demo()

if __name__ == "__main__":
    demo.launch(**launch_kwargs())
