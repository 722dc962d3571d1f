"""Image widgets: a frame with a caption (the stack preview) and the live view with focus peaking.

The pictures go through textual-image, which draws with the terminal's graphics (Sixel, or the
kitty graphics protocol) where it has them, with coloured half blocks on other terminals (tmux,
most terminals over SSH) and with grey shade characters when stdout is not a terminal. It picks
one when this module is first imported, by asking the terminal (up to ~0.5 s if it never
answers); so import this before the app starts (Textual owns stdin once it runs). ``renderer``
forces one instead ("halfcell" in tests, so they do not depend on the terminal).

Frames are reduced on arrival to a working copy of at most 2048 x 1536 (2x2 means, a few ms even
at 24 MP) and every draw fits that copy to the space the widget has, so a 24 MP capture costs no
more to show than a live-view frame, and a resize redraws without the caller.
Call :meth:`ImageView.show` on the app's thread (``app.call_from_thread`` from a worker).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image as PILImage
from textual import events
from textual.app import ComposeResult
from textual.containers import Container
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static
from textual_image import _terminal

from rig.tui.peaking import MAGENTA, as_rgb, fit, halve_to_fit, peaked_preview


def _prime_cell_size() -> None:
    # textual_image.widget reads the cell size at import and fails there on a pty that reports
    # 0 columns (ZeroDivisionError) or without stdout; take its own default (10 x 20 px) then.
    try:
        _terminal.get_cell_size()
    except (ZeroDivisionError, _terminal.TerminalError):
        _terminal.get_cell_size._result = _terminal.CellSize(10, 20)  # type: ignore[attr-defined]


_prime_cell_size()

# Importing textual_image.widget asks the terminal what it can draw (Sixel, kitty graphics).
from textual_image.widget import HalfcellImage, SixelImage, TGPImage, UnicodeImage  # noqa: E402
from textual_image.widget import Image as AutoImage  # noqa: E402
from textual_image.widget._base import Image as BaseImage  # noqa: E402  (the five's base)

Renderer = Literal["auto", "sixel", "tgp", "halfcell", "unicode"]

RENDERERS: dict[str, type[BaseImage]] = {
    "auto": AutoImage,
    "sixel": SixelImage,
    "tgp": TGPImage,
    "halfcell": HalfcellImage,
    "unicode": UnicodeImage,
}

WORK_SIZE = (2048, 1536)  # the largest copy kept of a frame: enough for Sixel on a big terminal
_FALLBACK_CELLS = (80, 24)  # before the first layout, the widget's size is not known


def renderer_name(renderer: Renderer = "auto") -> str:
    """What ``renderer`` draws with here: "auto" resolved to the method picked at import."""
    if renderer != "auto":
        return renderer
    for name, cls in RENDERERS.items():
        if name != "auto" and cls is AutoImage:
            return name
    # The auto class is its own subclass for every method but Sixel; match its renderable.
    renderable = getattr(AutoImage, "_Renderable", None)
    for name, cls in RENDERERS.items():
        if name != "auto" and getattr(cls, "_Renderable", None) is renderable:
            return name
    return "halfcell"


def _cell_pixels() -> tuple[int, int]:
    size = _terminal.get_cell_size()  # cached at import: no terminal query
    return size.width, size.height


class ImageView(Widget):
    """A frame, fitted to the space it has, with a caption line below it.

    Before the first frame (and after :meth:`show_nothing`) it shows a line of text instead.
    """

    DEFAULT_CSS = """
    ImageView {
        width: 1fr;
        height: 1fr;
        layout: vertical;
        overflow: hidden hidden;
    }
    ImageView > .image-box {
        width: 1fr;
        height: 1fr;
        align: center middle;
        overflow: hidden hidden;
    }
    ImageView > .image-box > .image {
        width: auto;
        height: auto;
    }
    ImageView > .image-box > .placeholder {
        width: 1fr;
        height: auto;
        text-align: center;
        color: $text-muted;
    }
    ImageView > .caption {
        width: 1fr;
        height: auto;
        max-height: 2;
        text-align: center;
    }
    """

    def __init__(
        self,
        placeholder: str = "no image yet",
        *,
        renderer: Renderer = "auto",
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(name=name, id=id, classes=classes)
        if renderer not in RENDERERS:
            raise ValueError(f"unknown renderer {renderer!r}; one of {', '.join(RENDERERS)}")
        self.renderer = renderer_name(renderer)
        self._image_class = RENDERERS[renderer]
        self._placeholder = placeholder
        self._work: np.ndarray | None = None  # our own reduced copy of the frame on show
        self._caption = ""
        self._caption_shown = ""
        self._drawn_for: tuple[int, int] | None = None  # the pixel box of the last draw

    def compose(self) -> ComposeResult:
        with Container(classes="image-box"):
            yield Static(self._placeholder, classes="placeholder", markup=False)
            image = self._image_class(classes="image")
            image.display = False
            yield image
        yield Static("", classes="caption", markup=False)

    # -- what the caller uses -------------------------------------------------------------------

    @property
    def has_image(self) -> bool:
        return self._work is not None

    @property
    def caption(self) -> str:
        return self._caption

    def show(self, rgb8: np.ndarray, caption: str = "") -> None:
        """Show ``rgb8`` (H x W x 3 or mono H x W, uint8) with ``caption`` below it."""
        work = halve_to_fit(as_rgb(rgb8), *WORK_SIZE)
        # A copy of our own: the caller may reuse its buffer for the next frame.
        self._work = work.copy() if np.may_share_memory(work, rgb8) else work
        self._caption = caption
        self._draw()

    def show_nothing(self, message: str | None = None) -> None:
        """Drop the frame and show ``message`` (or the placeholder given at construction)."""
        if message is not None:
            self._placeholder = message
        self._work = None
        self._caption = ""
        self._draw()

    # -- drawing --------------------------------------------------------------------------------

    def prepare(self, work: np.ndarray, max_w: int, max_h: int) -> np.ndarray:
        """The RGB picture to draw for the working copy ``work`` in a ``max_w`` x ``max_h`` box."""
        return fit(work, max_w, max_h)

    def caption_text(self) -> str:
        return self._caption

    def pixel_box(self) -> tuple[int, int]:
        """The picture size (px) that fills the space the image has, for this renderer."""
        box = self.query_one(".image-box", Container).content_size
        cols, rows = box.width, box.height
        if cols <= 0 or rows <= 0:
            cols, rows = self.content_size.width, self.content_size.height
        if cols <= 0 or rows <= 0:
            cols, rows = _FALLBACK_CELLS
        if self.renderer in ("sixel", "tgp"):
            cw, ch = _cell_pixels()
            return cols * cw, rows * ch
        # Half blocks have two pixels a cell, one above the other; shade characters one.
        return cols, rows * 2

    def _draw(self) -> None:
        if not self.is_mounted:
            return  # on_mount draws what arrived before
        image = self.query_one(".image", BaseImage)
        placeholder = self.query_one(".placeholder", Static)
        caption = self.query_one(".caption", Static)
        if self._work is None:
            placeholder.update(self._placeholder)
            placeholder.display = True
            image.display = False
            self._set_caption(caption, "")
            self._drawn_for = None
            return
        box = self.pixel_box()
        picture = np.ascontiguousarray(self.prepare(self._work, *box))
        image.image = PILImage.fromarray(picture, "RGB")
        image.display = True
        placeholder.display = False
        self._set_caption(caption, self.caption_text())
        self._drawn_for = box

    def _set_caption(self, caption: Static, text: str) -> None:
        # Each update lays the screen out again; a live view's caption rarely changes.
        if text != self._caption_shown:
            caption.update(text)
            self._caption_shown = text

    def on_mount(self) -> None:
        self._draw()

    def on_resize(self, event: events.Resize) -> None:
        # The box is laid out after this widget; draw again once it has its size.
        self.call_after_refresh(self._redraw_if_resized)

    def _redraw_if_resized(self) -> None:
        if self._work is not None and self.pixel_box() != self._drawn_for:
            self._draw()


class LiveView(ImageView):
    """The camera's live view; with :attr:`peaking` on, the sharpest edges are marked."""

    peaking: reactive[bool] = reactive(False, init=False)
    peaking_strength: reactive[float] = reactive(1.0, init=False)

    def __init__(
        self,
        placeholder: str = "no live view yet",
        *,
        renderer: Renderer = "auto",
        colour: tuple[int, int, int] = MAGENTA,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(placeholder, renderer=renderer, name=name, id=id, classes=classes)
        self.colour = colour

    def prepare(self, work: np.ndarray, max_w: int, max_h: int) -> np.ndarray:
        if not self.peaking:
            return fit(work, max_w, max_h)
        colour, dim = self.colour, 1.0
        if self.app.no_color:
            # Without colour a magenta mark is just a dark grey: white on a dimmed picture shows.
            colour, dim = (255, 255, 255), 0.6
        return peaked_preview(
            work, max_w, max_h, strength=self.peaking_strength, colour=colour, dim=dim
        )

    def caption_text(self) -> str:
        # Said in words too, so it reads without colour.
        if not self.peaking:
            return self._caption
        return f"{self._caption}  [peaking]" if self._caption else "[peaking]"

    def validate_peaking_strength(self, value: float) -> float:
        return max(0.05, float(value))  # 0 or less would mark everything

    def watch_peaking(self, value: bool) -> None:
        self._draw()

    def watch_peaking_strength(self, value: float) -> None:
        if self.peaking:
            self._draw()
