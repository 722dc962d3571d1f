"""A camera through python-gphoto2 (libgphoto2): detect, configure, capture, download.

Not thread-safe: libgphoto2 handles must be used from one thread. Use
:class:`rig.devices.camera_worker.CameraWorker` to own a :class:`GPhotoCamera` from anywhere, or
:class:`rig.devices.camera_process.CameraProcess` to run it in a process that can be killed.

For the virtual camera in python-gphoto2's wheels, set ``VCAMERADIR`` *before* this module is
first imported: the gphoto2 package picks its USB back end at import time.
"""

from __future__ import annotations

import difflib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gphoto2 as gp

# Plain values, defined where the camera process's parent can unpickle them without gphoto2.
from rig.devices.camera_child import CameraInfo, CameraSummary, ConfigValue
from rig.devices.image_format import FORMAT_KEYS, format_file_count, target_is_ram
from rig.errors import CameraError
from stacking.errors import StackingError
from stacking.files import atomic_write

log = logging.getLogger("stackrig.camera")

# The same setting under the names different vendors' drivers give it (camlibs/ptp2/config.c).
# A name is resolved to the first one of its group that the connected camera offers.
ALIASES: tuple[tuple[str, ...], ...] = (
    ("aperture", "f-number"),
    FORMAT_KEYS,  # the file type(s) a shot produces
)
VIBRATION_KEYS = ("mirrorlock", "shuttertype", "silentmode")
PC_SAVE_KEY = "pcsaveimgformat"  # Sony: which of a RAW+JPEG pair is sent to the computer
TARGET_KEY = "capturetarget"  # where a shot is stored: the camera's RAM or its card
SHOT_KEYS = frozenset({*FORMAT_KEYS, PC_SAVE_KEY, TARGET_KEY})

_GONE = {gp.GP_ERROR_IO, gp.GP_ERROR_IO_USB_FIND, gp.GP_ERROR_MODEL_NOT_FOUND}
# After these the PTP session is dead or out of step: reopen before the next call.
_REOPEN = _GONE | {gp.GP_ERROR_TIMEOUT}
_WIDGET_TYPES = {
    gp.GP_WIDGET_TEXT: "text",
    gp.GP_WIDGET_RANGE: "range",
    gp.GP_WIDGET_TOGGLE: "toggle",
    gp.GP_WIDGET_RADIO: "radio",
    gp.GP_WIDGET_MENU: "menu",
    gp.GP_WIDGET_BUTTON: "button",
    gp.GP_WIDGET_DATE: "date",
}
_STORE_FULL_EVENT = re.compile(r"PTP Event 400a\b", re.IGNORECASE)  # PTP_EC_StoreFull
_POLL_MS = 200
_logging_hook: object = None


@dataclass(frozen=True)
class _RemoteFile:
    folder: str
    name: str


def camera_error(exc: gp.GPhoto2Error, doing: str, model: str | None = None) -> CameraError:
    """Translate a libgphoto2 error into what happened and what to do about it."""
    who = model or "the camera"
    code = exc.code
    said = f"libgphoto2: [{code}] {exc.string}"
    if code in (gp.GP_ERROR_IO_USB_CLAIM, gp.GP_ERROR_IO_LOCK):
        text = (
            f"could not claim the USB camera while {doing}: another program holds it, usually "
            "the desktop's gvfs gphoto2 volume monitor. Run 'gio mount -s gphoto2' (or stop "
            "gvfs-gphoto2-volume-monitor and gvfsd-gphoto2), close photo apps, then unplug and "
            "replug the camera"
        )
    elif code == gp.GP_ERROR_CAMERA_BUSY:
        text = (
            f"{who} stayed busy while {doing}: it may still be saving the last image, have "
            "mirror lock-up on, or be in live view. Wait and retry; set capturetarget to "
            "'Memory card' so images do not pile up in its RAM"
        )
    elif code in _GONE:
        text = (
            f"{who} is gone while {doing}: it was unplugged, switched off or fell asleep. Check "
            "the cable and that it is on (disable auto power-off), then reconnect"
        )
    elif code == gp.GP_ERROR_NO_SPACE:
        text = f"{who}'s card is full while {doing}: free space on the card or change it"
    elif code == gp.GP_ERROR_TIMEOUT:
        text = (
            f"{who} did not answer in time while {doing}: check it is on and awake "
            "(disable auto power-off), then retry: stackrig reconnects first"
        )
    elif code == gp.GP_ERROR_NOT_SUPPORTED:
        text = f"{doing} is not supported by {who}"
    else:
        text = f"{who} failed while {doing}: check it is on and connected, then retry"
    return CameraError(f"{text} ({said})")


def _card_full(model: str, doing: str) -> CameraError:
    return CameraError(
        f"{model}'s card or memory is full while {doing}: download or delete images on the "
        "camera, or change the card, then retry"
    )


def _route_logging() -> None:
    """Send libgphoto2's messages to Python logging (logger 'gphoto2'), once per process."""
    global _logging_hook
    if _logging_hook is None:
        # libgphoto2's DEBUG level is a flood of USB traffic: leave it out.
        _logging_hook = gp.use_python_logging(
            mapping={gp.GP_LOG_VERBOSE: logging.DEBUG, gp.GP_LOG_DEBUG: logging.DEBUG - 5}
        )


def list_cameras() -> list[CameraInfo]:
    """Every camera libgphoto2 detects, as (model, port)."""
    _route_logging()
    try:
        found = gp.Camera.autodetect()
    except gp.GPhoto2Error as exc:
        raise camera_error(exc, "looking for cameras") from exc
    return [CameraInfo(found.get_name(i), found.get_value(i)) for i in range(found.count())]


def open_camera(info: CameraInfo) -> Any:
    """An initialised ``gp.Camera`` for exactly this model on this port."""
    camera = gp.Camera()
    abilities = gp.CameraAbilitiesList()
    abilities.load()
    camera.set_abilities(abilities[abilities.lookup_model(info.model)])
    ports = gp.PortInfoList()
    ports.load()
    camera.set_port_info(ports[ports.lookup_path(info.port)])
    camera.init()
    return camera


def choose(found: Sequence[CameraInfo], model: str | None, port: str | None) -> CameraInfo:
    """The one camera that matches model and port (either may be None: any)."""
    matches = [
        c for c in found if (model is None or c.model == model) and (port is None or c.port == port)
    ]
    listing = ", ".join(f"{c.model} on {c.port}" for c in found)
    if len(matches) == 1:
        return matches[0]
    if not found:
        raise CameraError(
            "no camera found: check it is switched on, connected by USB and awake; if the "
            "desktop opened it as a drive, run 'gio mount -s gphoto2' and replug it"
        )
    if not matches:
        wanted = " on ".join(x for x in (model, port) if x)
        raise CameraError(f"no camera matches {wanted}; connected: {listing}. Choose one of these")
    raise CameraError(f"{len(matches)} cameras match ({listing}): choose one by model and port")


def safe_filename(name: str) -> str:
    """A camera's file name made safe to create in a folder: basename only, plain characters."""
    base = re.split(r"[/\\]", name)[-1]
    base = re.sub(r"[^\w.\-]", "_", base, flags=re.ASCII).lstrip(".")
    return base[:200] or "capture"


def unique_path(folder: Path, name: str) -> Path:
    """``folder/name``, or with -1, -2 ... before the extension where that is taken."""
    target = folder / name
    stem, suffix = target.stem, target.suffix
    n = 0
    while target.exists():
        n += 1
        target = folder / f"{stem}-{n}{suffix}"
    return target


def write_durably(folder: Path, name: str, data: bytes | memoryview) -> Path:
    """Write under a name not yet taken, via a temp file, fsync'd, renamed, folder fsync'd."""
    # One thread writes into a capture folder, so the name chosen here stays free.
    target = unique_path(folder, name)
    try:
        return atomic_write(target, lambda fh: fh.write(data))
    except StackingError as exc:
        raise CameraError(f"could not save {name} in {folder}: {exc}") from exc


class GPhotoCamera:
    """One camera through libgphoto2, implementing :class:`rig.devices.protocols.Camera`.

    ``detect`` and ``opener`` are the python-gphoto2 boundary (tests pass fakes).
    After an error that means the camera is gone, the next call reconnects first.
    """

    def __init__(
        self,
        model: str | None = None,
        port: str | None = None,
        *,
        detect: Callable[[], list[CameraInfo]] = list_cameras,
        opener: Callable[[CameraInfo], Any] = open_camera,
        busy_delays_s: Sequence[float] = (0.2, 0.5, 1.0, 2.0),
        capture_timeout_s: float = 30.0,
        quiet_s: float = 1.5,
        late_s: float = 5.0,
    ) -> None:
        self.model = model
        self.port = port
        self.info: CameraInfo | None = None
        self._detect = detect
        self._opener = opener
        self._busy_delays_s = tuple(busy_delays_s)
        self._capture_timeout_s = capture_timeout_s
        self._quiet_s = quiet_s  # a shot is over this long after its last file, if unsure
        self._late_s = late_s  # how long a file the format promises may trail the one before
        self._camera: Any = None
        self._store_full = False
        # From the camera's settings at connect and after set(): None where it cannot tell.
        self.files_per_shot: int | None = None
        self.capture_target: str | None = None
        self._can_delete = True

    # -- connection -------------------------------------------------------------------------

    def connect(self) -> str:
        """Detect, pick the camera asked for (or the only one), open it; return 'model on port'."""
        self.close()
        info = choose(self._detect(), self.model, self.port)
        self._camera = self._open(info, "opening the camera")
        self.info = info
        self._store_full = False
        self._can_delete = True
        log.info("connected to %s on %s", info.model, info.port)
        self._read_shot_settings()
        return f"{info.model} on {info.port}"

    def reconnect(self) -> str:
        """Detect again and re-open: after a replug the port changes, the model does not."""
        if self.info is None:
            return self.connect()
        found = self._detect()
        same_port = [c for c in found if c == self.info]
        info = same_port[0] if same_port else choose(found, self.info.model, None)
        self.close()
        self._camera = self._open(info, "reconnecting")
        self.info = info
        log.info("reconnected to %s on %s", info.model, info.port)
        self._read_shot_settings()
        return f"{info.model} on {info.port}"

    def close(self) -> None:
        camera, self._camera = self._camera, None
        if camera is not None:
            try:
                camera.exit()
            except gp.GPhoto2Error as exc:
                log.warning("closing the camera: %s", exc)

    # -- settings ---------------------------------------------------------------------------

    def summary(self) -> CameraSummary:
        info = self._info()
        widgets = self._widgets()[1]
        free, total = self._storage()
        return CameraSummary(
            model=info.model,
            port=info.port,
            lens=_text(widgets.get("lensname")),
            battery=_text(widgets.get("batterylevel")),
            storage_free_bytes=free,
            storage_total_bytes=total,
        )

    def config_keys(self) -> list[str]:
        return list(self._widgets()[1])

    def vibration_controls(self) -> list[str]:
        """Those of mirror lock-up, shutter type and silent mode that this camera offers."""
        keys = self._widgets()[1]
        return [k for k in VIBRATION_KEYS if k in keys]

    def get(self, key: str) -> ConfigValue:
        widgets = self._widgets()[1]
        return _describe(widgets[self._resolve(key, widgets)])

    def set(self, key: str, value: str | int | float | bool) -> None:
        root, widgets = self._widgets()
        name = self._resolve(key, widgets)
        widget = widgets[name]
        if widget.get_readonly():
            raise CameraError(f"{name} is read-only on {self._model()}: it cannot be set")
        wanted = _coerce(_describe(widget), value, self._model())
        doing = f"setting {name} to {value!r}"
        self._call(lambda: widget.set_value(wanted), doing)
        self._call(lambda: self._require().set_config(root), doing)
        log.info("%s = %r", name, wanted)
        if name in SHOT_KEYS:
            self._read_shot_settings()

    # -- capture ----------------------------------------------------------------------------

    def capture(self, folder: Path, delete_after: bool | None = None) -> list[Path]:
        """Shoot once; every file it produced, downloaded, fsync'd and renamed into ``folder``.

        ``delete_after``: remove the camera's copy once the file is safely on disk; None
        (automatic) does so when the capture target is the camera's RAM and keeps it on a card.
        """
        folder.mkdir(parents=True, exist_ok=True)
        camera = self._require()
        delete = self.deletes_by_default() if delete_after is None else delete_after
        self._drain_events(camera)
        started = time.monotonic()
        saved = []
        for remote in self._shoot(camera):
            saved.append(self._download(camera, remote, folder))  # fsync'd before any delete
            if delete and self._can_delete:
                self._delete(camera, remote)
        log.info("captured %s in %.2f s", [p.name for p in saved], time.monotonic() - started)
        return saved

    def deletes_by_default(self) -> bool:
        """Whether an automatic capture deletes the camera's copy: only from its RAM, never
        from a card (nor where the target is unknown: the card's images are the user's)."""
        return self.capture_target is not None and target_is_ram(self.capture_target) is True

    def preview(self) -> bytes:
        """One live-view frame (JPEG bytes)."""
        camera = self._require()
        cam_file = self._call(camera.capture_preview, "live view")
        return bytes(cam_file.get_data_and_size())

    # -- internals --------------------------------------------------------------------------

    def _open(self, info: CameraInfo, doing: str) -> Any:
        try:
            return self._retry_busy(lambda: self._opener(info), doing)
        except gp.GPhoto2Error as exc:
            raise camera_error(exc, doing, info.model) from exc

    def _shoot(self, camera: Any) -> list[_RemoteFile]:
        try:
            self._retry_busy(camera.trigger_capture, "triggering a capture")
        except gp.GPhoto2Error as exc:
            if exc.code == gp.GP_ERROR_NOT_SUPPORTED:
                path = self._call(lambda: camera.capture(gp.GP_CAPTURE_IMAGE), "capturing")
                return [_RemoteFile(path.folder, path.name)]
            if exc.code == gp.GP_ERROR and self._store_full:
                raise _card_full(self._model(), "triggering a capture") from exc
            raise self._translate(exc, "triggering a capture") from exc
        return self._collect_files(camera)

    def _collect_files(self, camera: Any) -> list[_RemoteFile]:
        """FILE_ADDED events until as many files came as the image format makes (RAW+JPEG: 2).

        Where the format says nothing: until CAPTURE_COMPLETE, or until quiet once a file came
        (Canon with a card target may never say CAPTURE_COMPLETE). Where it does, a shot that
        stays short is waited for up to ``late_s``, then taken as it is, and the count is no
        longer trusted for this connection.
        """
        files: list[_RemoteFile] = []
        expected = self.files_per_shot
        complete = False
        start = last = time.monotonic()
        while True:
            now = time.monotonic()
            if files:
                if expected is None:
                    if complete or now - last >= self._quiet_s:
                        return files
                elif len(files) >= expected:
                    return files
                elif now - last >= self._late_s:
                    log.warning(
                        "%s: the image format makes %d files a shot but %d came; waiting for "
                        "the camera to fall quiet from now on",
                        self._model(),
                        expected,
                        len(files),
                    )
                    self.files_per_shot = None
                    return files
            elif now - start >= self._capture_timeout_s:
                raise CameraError(
                    f"{self._model()} took no picture within {self._capture_timeout_s:.0f} s: "
                    "check the card is in, the lens is set to manual focus (autofocus may not "
                    "lock) and the exposure is not longer than that"
                )
            kind, data = self._call(lambda: camera.wait_for_event(_POLL_MS), "waiting for the shot")
            if kind == gp.GP_EVENT_FILE_ADDED:
                files.append(_RemoteFile(data.folder, data.name))
                last = time.monotonic()
            elif kind == gp.GP_EVENT_CAPTURE_COMPLETE and files:
                complete = True
            elif kind == gp.GP_EVENT_UNKNOWN and _STORE_FULL_EVENT.search(str(data)):
                self._store_full = True
                raise _card_full(self._model(), "capturing")

    def _delete(self, camera: Any, remote: _RemoteFile) -> None:
        doing = f"deleting {remote.name} from the camera"
        try:
            self._retry_busy(partial(camera.file_delete, remote.folder, remote.name), doing)
        except gp.GPhoto2Error as exc:
            if exc.code != gp.GP_ERROR_NOT_SUPPORTED:
                raise self._translate(exc, doing) from exc
            # The file is already safe on disk: a camera that cannot delete keeps its copies.
            log.warning("%s cannot delete files: they stay on the camera", self._model())
            self._can_delete = False

    def _read_shot_settings(self) -> None:
        """What a shot will make and where it is stored, from the camera's settings."""
        try:
            widgets = self._widgets()[1]
        except CameraError as exc:
            log.warning("could not read the image format and capture target: %s", exc)
            self.files_per_shot = self.capture_target = None
            return
        fmt = next((_text(widgets[k]) for k in FORMAT_KEYS if k in widgets), None)
        count = format_file_count(fmt) if fmt else None
        pc_save = _text(widgets.get(PC_SAVE_KEY))
        if count == 2 and pc_save and format_file_count(pc_save) == 1:
            count = 1  # Sony sends only the JPEG or only the RAW of a pair to the computer
        self.files_per_shot = count
        self.capture_target = _text(widgets.get(TARGET_KEY))
        log.info(
            "%s: image format %s (%s), capture target %s (automatic delete after download: %s)",
            self._model(),
            fmt or "not reported",
            f"{count} file{'s' if count != 1 else ''} a shot" if count else "count unknown",
            self.capture_target or "not reported",
            "yes" if self.deletes_by_default() else "no",
        )

    def _drain_events(self, camera: Any) -> None:
        """Consume what the camera reported since the last shot, so it is not taken as new."""
        for _ in range(100):  # bounded: a camera that chatters must not stall the shot
            kind, data = self._call(lambda: camera.wait_for_event(10), "reading camera events")
            if kind == gp.GP_EVENT_TIMEOUT:
                return
            if kind == gp.GP_EVENT_FILE_ADDED:
                log.warning("ignoring a file the camera added before the shot: %s", data.name)

    def _download(self, camera: Any, remote: _RemoteFile, folder: Path) -> Path:
        doing = f"downloading {remote.name}"
        cam_file = self._call(
            lambda: camera.file_get(remote.folder, remote.name, gp.GP_FILE_TYPE_NORMAL), doing
        )
        try:
            return write_durably(folder, safe_filename(remote.name), cam_file.get_data_and_size())
        except OSError as exc:
            raise CameraError(
                f"could not save {remote.name} into {folder} ({exc}): free disk space or choose "
                "another folder; the image is still on the camera"
            ) from exc

    def _storage(self) -> tuple[int | None, int | None]:
        camera = self._require()
        try:
            stores = self._retry_busy(camera.get_storageinfo, "reading storage")
        except gp.GPhoto2Error as exc:
            if exc.code == gp.GP_ERROR_NOT_SUPPORTED:
                return None, None
            raise self._translate(exc, "reading storage") from exc
        sized = [
            s
            for s in stores
            if s.fields & gp.GP_STORAGEINFO_MAXCAPACITY
            and s.fields & gp.GP_STORAGEINFO_FREESPACEKBYTES
        ]
        if not sized:
            return None, None
        return sum(s.freekbytes for s in sized) * 1024, sum(s.capacitykbytes for s in sized) * 1024

    def _widgets(self) -> tuple[Any, dict[str, Any]]:
        """The configuration tree's root, and its leaf widgets by name."""
        root = self._call(lambda: self._require().get_config(), "reading the configuration")
        leaves: dict[str, Any] = {}
        pending = [root]
        while pending:
            widget = pending.pop(0)
            if widget.get_type() in (gp.GP_WIDGET_WINDOW, gp.GP_WIDGET_SECTION):
                pending.extend(widget.get_child(i) for i in range(widget.count_children()))
            else:
                leaves.setdefault(widget.get_name(), widget)
        return root, leaves

    def _resolve(self, key: str, widgets: dict[str, Any]) -> str:
        if key in widgets:
            return key
        for group in ALIASES:
            if key in group:
                for name in group:
                    if name in widgets:
                        return name
        close = difflib.get_close_matches(key, list(widgets), n=5, cutoff=0.6)
        hint = (
            f"did you mean {', '.join(close)}?"
            if close
            else "'stackrig camera config' lists them all"
        )
        raise CameraError(f"{self._model()} has no setting {key!r}: {hint}")

    def _call(self, fn: Callable[[], Any], doing: str) -> Any:
        try:
            return self._retry_busy(fn, doing)
        except gp.GPhoto2Error as exc:
            raise self._translate(exc, doing) from exc

    def _retry_busy(self, fn: Callable[[], Any], doing: str) -> Any:
        """Run ``fn``, retrying with growing pauses while the camera says busy (-110)."""
        for delay in self._busy_delays_s:
            try:
                return fn()
            except gp.GPhoto2Error as exc:
                if exc.code != gp.GP_ERROR_CAMERA_BUSY:
                    raise
                log.info("%s busy while %s: retrying in %.1f s", self._model(), doing, delay)
                time.sleep(delay)
        return fn()

    def _translate(self, exc: gp.GPhoto2Error, doing: str) -> CameraError:
        if exc.code in _REOPEN:
            self.close()  # the next call reconnects
        return camera_error(exc, doing, self._model())

    def _require(self) -> Any:
        if self._camera is None:
            if self.info is None:
                raise CameraError("the camera is not connected: connect first")
            log.info("reconnecting to %s", self.info.model)
            self.reconnect()
        return self._camera

    def _info(self) -> CameraInfo:
        self._require()
        assert self.info is not None  # set by connect
        return self.info

    def _model(self) -> str:
        return self.info.model if self.info else (self.model or "the camera")


def _text(widget: Any) -> str | None:
    return str(widget.get_value()) if widget is not None else None


def _describe(widget: Any) -> ConfigValue:
    kind = _WIDGET_TYPES.get(widget.get_type(), "other")
    choices: tuple[str, ...] = ()
    if kind in ("radio", "menu"):
        choices = tuple(widget.get_choice(i) for i in range(widget.count_choices()))
    span = tuple(widget.get_range()) if kind == "range" else None
    return ConfigValue(
        name=widget.get_name(),
        label=widget.get_label(),
        type=kind,
        value=None if kind == "button" else widget.get_value(),
        choices=choices,
        readonly=bool(widget.get_readonly()),
        range=span,
    )


def _coerce(current: ConfigValue, value: object, model: str) -> str | int | float:
    """``value`` in the form the widget takes, or CameraError naming what it accepts."""
    if current.type in ("radio", "menu"):
        return _match_choice(current, value, model)
    if current.range is not None:
        low, high, _step = current.range
        number = _number(value)
        if number is None or not low <= number <= high:
            raise CameraError(f"{current.name} = {value!r}: {model} takes {low} to {high}")
        return number
    if current.type == "toggle":
        text = str(value).lower()
        if text not in ("0", "1", "true", "false", "on", "off"):
            raise CameraError(f"{current.name} = {value!r}: use on or off")
        return 1 if text in ("1", "true", "on") else 0
    if current.type == "date":
        number = _number(value)
        if number is None:
            raise CameraError(f"{current.name} = {value!r}: give seconds since 1970")
        return int(number)
    return str(value)


def _match_choice(current: ConfigValue, value: object, model: str) -> str:
    """The camera's own spelling: exact, then ignoring case, then by number ("8" -> "f/8")."""
    text = str(value).strip()
    for choice in current.choices:
        if choice == text or choice.lower() == text.lower():
            return choice
    wanted = _number(text)
    for choice in current.choices:
        if wanted is not None and _number(choice) == wanted:
            return choice
    raise CameraError(
        f"{current.name} = {value!r}: {model} offers {', '.join(current.choices) or 'nothing'}"
    )


def _number(value: object) -> float | None:
    text = str(value).strip().lower().removeprefix("f/").removesuffix("s")
    try:
        return float(text)
    except ValueError:
        return None
