"""Image helpers: nearest-neighbour upscaled, labelled PNG grids of uint8 images (grey or RGB)."""
from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont


LABEL_PX = 14  # the labels' font size in image pixels: ≥ 12 px on a desktop, and ≥ 10 px wherever the image is not shrunk


def label_font(size: int = LABEL_PX) -> ImageFont.ImageFont:
    """Pillow's built-in scalable font (no system font needed, so it is the same on a Space)."""
    return ImageFont.load_default(size=size)


def wrap_label(text: str, font, width: float) -> list[str]:
    """Break a label at spaces into lines no wider than `width` (a word longer than that stays whole)."""
    lines: list[str] = []
    for word in text.split(" "):
        if lines and font.getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


def grid_image(images: np.ndarray, scale: int = 3, row_labels: list[str] | None = None,
               col_labels: list[str] | None = None, pad: int = 2) -> Image.Image:
    """Tile uint8 images (R, C, H, W) or RGB (R, C, H, W, 3) into one PIL image, upscaled by `scale`, with labels:
    row labels on the left, column labels above (wrapped to the column's width), none over a sample."""
    assert images.dtype == np.uint8 and (images.ndim == 4 or (images.ndim == 5 and images.shape[-1] == 3)), (
        images.shape, images.dtype)
    r, c, h, w = images.shape[:4]
    mode, white, ink = ("L", 255, 0) if images.ndim == 4 else ("RGB", (255, 255, 255), (0, 0, 0))
    font = label_font()
    cell_h, cell_w = h * scale + pad, w * scale + pad
    line_h = LABEL_PX + 3
    left = 0 if not row_labels else 10 + int(max(font.getlength(s) for s in row_labels))
    cols = [wrap_label(s, font, cell_w - 4) for s in col_labels or []]
    top = 0 if not cols else 4 + line_h * max(len(lines) for lines in cols)
    canvas = Image.new(mode, (left + c * cell_w + pad, top + r * cell_h + pad), white)
    for i in range(r):
        for j in range(c):
            tile = Image.fromarray(images[i, j]).resize((w * scale, h * scale), Image.NEAREST)
            canvas.paste(tile, (left + pad + j * cell_w, top + pad + i * cell_h))
    draw = ImageDraw.Draw(canvas)
    for i, s in enumerate(row_labels or []):
        draw.text((4, top + pad + i * cell_h + (cell_h - LABEL_PX) // 2), s, fill=ink, font=font)
    for j, lines in enumerate(cols):
        for k, line in enumerate(lines):
            draw.text((left + pad + j * cell_w + 2, 2 + k * line_h), line, fill=ink, font=font)
    return canvas
