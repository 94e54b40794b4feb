"""CFG Explorer core: classifier-free diffusion guidance (Ho & Salimans, 2021) in plain PyTorch."""
