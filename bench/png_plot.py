"""A dependency-free PNG line plot (zlib + struct), so benches can draw curves without matplotlib."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

COLORS = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (255, 127, 14), (148, 103, 189), (140, 86, 75)]


def _png_bytes(img: np.ndarray) -> bytes:
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def _line(img: np.ndarray, x0: float, y0: float, x1: float, y1: float, color: tuple[int, int, int]) -> None:
    n = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
    xs = np.linspace(x0, x1, n).round().astype(int)
    ys = np.linspace(y0, y1, n).round().astype(int)
    for dy in (0, 1):  # two pixels thick
        ok = (xs >= 0) & (xs < img.shape[1]) & (ys + dy >= 0) & (ys + dy < img.shape[0])
        img[ys[ok] + dy, xs[ok]] = color


def line_plot(path: str | Path, series: dict[str, tuple[list[float], list[float]]],
              width: int = 800, height: int = 500) -> list[str]:
    """Draws every (xs, ys) series on shared axes with light grid lines; returns the legend (name → color)."""
    img = np.full((height, width, 3), 255, dtype=np.uint8)
    pad = 40
    all_x = [x for xs, _ in series.values() for x in xs]
    all_y = [y for _, ys in series.values() for y in ys]
    x_lo, x_hi = min(all_x), max(all_x) or 1
    y_lo, y_hi = min(all_y), max(all_y)
    if y_hi == y_lo:
        y_hi = y_lo + 1

    def px(x: float, y: float) -> tuple[float, float]:
        return (pad + (x - x_lo) / (x_hi - x_lo or 1) * (width - 2 * pad),
                height - pad - (y - y_lo) / (y_hi - y_lo) * (height - 2 * pad))

    for i in range(5):
        gy = pad + i * (height - 2 * pad) / 4
        img[int(gy), pad:width - pad] = (225, 225, 225)
    img[height - pad, pad:width - pad] = 0
    img[pad:height - pad, pad] = 0
    legend = []
    for (name, (xs, ys)), color in zip(series.items(), COLORS * 4, strict=False):
        pts = [px(x, y) for x, y in zip(xs, ys, strict=True)]
        for (a, b), (c, d) in zip(pts, pts[1:], strict=False):
            _line(img, a, b, c, d, color)
        legend.append(f"{name}: rgb{color}")
    Path(path).write_bytes(_png_bytes(img))
    return legend + [f"x {x_lo:g}..{x_hi:g}, y {y_lo:.3f}..{y_hi:.3f}"]
