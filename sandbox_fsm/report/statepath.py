"""The lifecycle machine with the path a sandbox took, as an inline SVG.

The Mermaid diagram (`audit.diagram`) needs the Mermaid JS bundle (~3 MB) to be drawn,
too big to inline in every report; so the page draws the same machine and the same path
(`audit.path_taken`) itself: the machine's states in a row, every allowed transition as
a faint arc, the transitions taken as numbered bold arcs (forward above, backward
below). The Mermaid text is kept in the page for anyone who wants to render it.
"""

from __future__ import annotations

from collections.abc import Sequence
from xml.sax.saxutils import escape

from ..audit import Transition
from ..machines import INTERNAL, KINDS, STATES

BOX_W, BOX_H, GAP, TOP = 92, 30, 34, 96
STEP = BOX_W + GAP


def _x(state: str) -> float:
    return 10 + STATES.index(state) * STEP + BOX_W / 2


def _arc(src: str, dest: str, lift: float) -> tuple[str, float, float]:
    """An SVG path from src to dest bulging by `lift` (negative: above); its label point."""
    x1, x2 = _x(src), _x(dest)
    y = TOP + (0 if lift < 0 else BOX_H)
    if src == dest:
        return (f"M{x1 - 12},{y} C{x1 - 30},{y + lift} {x1 + 30},{y + lift} {x1 + 12},{y}",
                x1, y + lift * 0.8)
    mid = (x1 + x2) / 2
    return f"M{x1},{y} Q{mid},{y + 2 * lift} {x2},{y}", mid, y + lift


def _lift(src: str, dest: str, taken: bool) -> float:
    span = abs(STATES.index(dest) - STATES.index(src)) or 1
    lift = 18 + 14 * span + (6 if taken else 0)
    forward = STATES.index(dest) >= STATES.index(src)
    return -lift if forward else lift


def state_path_svg(kind: str, taken: Sequence[Transition]) -> str:
    """`<svg>` of the `kind` machine with `taken` marked (numbered in order)."""
    # The runtime's own edges (fail, lost) are drawn only when taken: they go everywhere.
    allowed = {e for e in KINDS[kind].edges() if e[1] not in INTERNAL}
    numbers: dict[tuple[str, str, str], list[int]] = {}
    for n, t in enumerate(taken, 1):
        numbers.setdefault((t.source, t.trigger, t.dest), []).append(n)
    visited = {t.source for t in taken} | {t.dest for t in taken}
    current = taken[-1].dest if taken else None
    parts = []
    for src, trigger, dest in sorted(allowed - set(numbers)):
        path, _, _ = _arc(src, dest, _lift(src, dest, False))
        parts.append(f'<path class="edge" d="{path}"><title>{escape(trigger)}</title></path>')
    for (src, trigger, dest), ns in numbers.items():
        path, lx, ly = _arc(src, dest, _lift(src, dest, True))
        ok = all(taken[n - 1].completed for n in ns)
        label = f"{','.join(map(str, ns))}. {trigger}"
        parts.append(f'<path class="edge taken{"" if ok else " aborted"}" d="{path}" '
                     f'marker-end="url(#arrow)"/>'
                     f'<text class="edge-label" x="{lx}" y="{ly}">{escape(label)}</text>')
    for state in STATES:
        cls = "current" if state == current else "visited" if state in visited else ""
        x = _x(state) - BOX_W / 2
        parts.append(f'<g class="state {cls}" data-state="{state}"><rect x="{x}" y="{TOP}" '
                     f'width="{BOX_W}" height="{BOX_H}" rx="8"/><text x="{_x(state)}" '
                     f'y="{TOP + BOX_H / 2 + 4}">{state}</text></g>')
    width, height = 20 + len(STATES) * STEP - GAP, TOP * 2 + BOX_H
    return (f'<svg class="statepath" viewBox="0 0 {width} {height}" width="{width}" '
            f'height="{height}" role="img" aria-label="{escape(kind)} state path">'
            '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
            'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z"/>'
            '</marker></defs>' + "".join(parts) + "</svg>")
