"""Text and image views of an AutoTTS-v0 state: the width-depth grid of branches."""

from __future__ import annotations

import numpy as np

_OTHER = np.array((120, 80, 40), np.uint8)  # answers first seen at rank >= N
_UNREVEALED = np.array((90, 90, 90), np.uint8)
_PRUNED = np.array((170, 170, 170), np.uint8)
_PALETTE = np.array([  # answer rank colours (cycled)
    (230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180),
    (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128),
], dtype=np.uint8)


def render_ansi(depth, pruned, finished, answer, votes, tokens, max_depth, beta, n_open
                ) -> str:
    """One line per opened slot: a depth bar, state and latest revealed answer rank."""
    width = 40
    lines = [f"AutoTTS  beta={beta:.2f}  opened={n_open}  tokens={tokens:,.0f}"]
    for i in range(n_open):
        fill = int(width * depth[i] / max_depth + 0.5)
        state = "pruned" if pruned[i] else ("done" if finished[i] else "live")
        ans = "-" if answer[i] < 0 else ("other" if answer[i] >= len(depth) else f"#{answer[i]}")
        lines.append(f"{i:3d} |{'#' * fill}{'.' * (width - fill)}| d={int(depth[i]):3d} "
                     f"{state:6s} ans={ans}")
    ranked = [(int(v), r) for r, v in enumerate(votes) if v > 0]
    if ranked:
        lines.append("votes: " + "  ".join(
            f"{'other' if r >= len(depth) else f'#{r}'}:{v}" for v, r in ranked))
    return "\n".join(lines) + "\n"


def render_rgb(depth, pruned, finished, answer, votes, tokens, max_depth, beta, n_open
               ) -> np.ndarray:
    """An image (H, W, 3) uint8: one column per slot, its height the depth; colour = the
    latest revealed answer's rank (brown for "other", dark grey when none revealed), light
    grey when pruned, a black cap when finished. Plain numpy slicing, no plotting library."""
    n = len(depth)
    cell_w, h = 8, 160
    img = np.full((h, n * cell_w, 3), 255, dtype=np.uint8)
    for i in range(n_open):
        top = h - int(h * depth[i] / max_depth + 0.5)
        x0, x1 = i * cell_w + 1, (i + 1) * cell_w - 1
        if pruned[i]:
            color = _PRUNED
        elif answer[i] >= n:
            color = _OTHER
        elif answer[i] >= 0:
            color = _PALETTE[answer[i] % len(_PALETTE)]
        else:
            color = _UNREVEALED
        img[top:h, x0:x1] = color
        if finished[i]:
            img[max(top - 3, 0):top + 1, x0:x1] = 0
    return img
