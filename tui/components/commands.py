"""The command palette's provider: every action of the app, searchable by name."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from ..keys import MAIN_KEYS, key_label


class MvcdbCommands(Provider):
    """Lists each main-screen action with its key, so nothing is reachable only by memory."""

    def _commands(self) -> list[tuple[str, str, str]]:
        return [
            (f"{label} ({key_label(key)})", help_text, action)
            for key, action, label, _, help_text in MAIN_KEYS
        ] + [
            ("Clear marks", "Unmark every marked version", "clear_marks"),
            ("Clear filter", "Show every version again", "clear_filter"),
            ("Focus detail", "Move the focus to the detail pane", "focus_detail"),
        ]

    async def discover(self) -> Hits:
        for title, help_text, action in self._commands():
            yield DiscoveryHit(title, partial(self.app.run_action, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, action in self._commands():
            score = max(matcher.match(title), matcher.match(help_text) * 0.5)
            if score > 0:
                yield Hit(
                    score, matcher.highlight(title), partial(self.app.run_action, action), help=help_text
                )
