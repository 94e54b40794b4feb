"""Image helpers: nearest-neighbour upscaled, labelled PNG grids of uint8 images (grey or RGB)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def grid_image(images: np.ndarray, scale: int = 3, row_labels: list[str] | None = None,
               col_labels: list[str] | None = None, pad: int = 2) -> Image.Image:
    """Tile uint8 images (R, C, H, W) or RGB (R, C, H, W, 3) into one PIL image, upscaled by `scale`, with labels."""
    assert images.dtype == np.uint8 and (images.ndim == 4 or (images.ndim == 5 and images.shape[-1] == 3)), (
        images.shape, images.dtype)
    r, c, h, w = images.shape[:4]
    mode, white, ink = ("L", 255, 0) if images.ndim == 4 else ("RGB", (255, 255, 255), (0, 0, 0))
    font = ImageFont.load_default()
    left = 0 if not row_labels else 8 + 7 * max(len(s) for s in row_labels)
    top = 0 if not col_labels else 16
    cell_h, cell_w = h * scale + pad, w * scale + pad
    canvas = Image.new(mode, (left + c * cell_w + pad, top + r * cell_h + pad), white)
    for i in range(r):
        for j in range(c):
            tile = Image.fromarray(images[i, j]).resize((w * scale, h * scale), Image.NEAREST)
            canvas.paste(tile, (left + pad + j * cell_w, top + pad + i * cell_h))
    draw = ImageDraw.Draw(canvas)
    for i, s in enumerate(row_labels or []):
        draw.text((4, top + pad + i * cell_h + cell_h // 2 - 6), s, fill=ink, font=font)
    for j, s in enumerate(col_labels or []):
        draw.text((left + pad + j * cell_w + 2, 2), s, fill=ink, font=font)
    return canvas
