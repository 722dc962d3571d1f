"""Textual's footer without its leak of every key it ever showed (textualize/textual#6666).

``Footer.compose`` data-binds each ``FooterKey`` to the footer's ``compact``; Textual keeps
``(key, setter)`` on the footer and drops the entry only when ``compact`` changes, which it
never does here. So every recompose (each screen pushed, popped or refocused) kept the old
keys alive, with their styles and rendered strips: during a shoot the heap grew until full
garbage collections of up to a second stopped the event loop (and every thread with it).
After each recompose this footer forgets the watchers of keys that are no longer mounted.
"""

from __future__ import annotations

from textual.widgets import Footer as TextualFooter

# Where Textual's reactive module keeps an object's watchers (``textual.reactive._watch``).
_WATCHERS = "__watchers"


class Footer(TextualFooter):
    async def recompose(self) -> None:
        await super().recompose()
        self.forget_removed_keys()

    def forget_removed_keys(self) -> int:
        """Drop the watchers whose widget has left the DOM; how many were dropped."""
        dropped = 0
        watchers: dict[str, list[tuple[object, object]]] = getattr(self, _WATCHERS, {})
        for entries in watchers.values():
            kept = [e for e in entries if getattr(e[0], "is_attached", True)]
            dropped += len(entries) - len(kept)
            entries[:] = kept
        return dropped
