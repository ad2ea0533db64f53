"""A trajectory line chart (plotext through textual-plotext) with one or two overlaid runs."""

from __future__ import annotations

from typing import Any

import numpy as np
from textual.app import RenderResult
from textual_plotext import PlotextPlot


class TrajectoryChart(PlotextPlot):
    """Plots one series of one or more versions against their steps.

    plotext redraws the whole figure on every render; the result is cached per size and data so
    repaints caused by other widgets (cursor moves, scrolling) cost nothing here.
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002 - Textual's name
        super().__init__(id=id)
        self._generation = 0
        self._cache: tuple[Any, RenderResult] | None = None

    def plot(self, title: str, lines: list[tuple[str, np.ndarray, np.ndarray]]) -> None:
        """Draw (label, steps, values) lines on one set of axes (NaNs are left out)."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        plt.xlabel("step")
        drawn = False
        for label, steps, values in lines:
            keep = np.isfinite(values)
            if not keep.any():
                continue
            plt.plot(steps[keep].tolist(), values[keep].tolist(), label=label, marker="braille")
            drawn = True
        if not drawn:
            plt.title(f"{title} (no finite values)")
        self._changed()

    def blank(self, title: str) -> None:
        """An empty chart with a title saying why."""
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        plt.title(title)
        self._changed()

    def _changed(self) -> None:
        self._generation += 1
        self.refresh()

    def render(self) -> RenderResult:
        key = (self.size, self._generation, self.app.theme, self.theme)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, super().render())
        return self._cache[1]
