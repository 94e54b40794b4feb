"""CFG Explorer's Gradio layer: plain handler functions (handlers.py), plots (plots.py) and the layout (ui.py)."""
