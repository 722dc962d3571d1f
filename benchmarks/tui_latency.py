"""Key press -> repaint in the terminal UI, during a 24 MP simulated shoot with stacking on.

``python -m benchmarks.tui_latency [--shots 30] [--size 6000x4000] [--interval 1.5]
[--every 0.2] [--modes threads,off,threads-nice,process,process-nice]
[--full-gc-every N] [--profile-ui DIR]`` (about 6 minutes with every mode; 2 cores)

This process plays the terminal. For each mode it starts the app in a fresh child process on a
pseudo-terminal of 120 x 40 cells (``TERM=xterm-256color``, truecolor, 10 x 20 px cells, no
graphics query answered, so images are drawn with coloured half blocks, as in tmux or over
SSH): :class:`~rig.tui.app.StackrigApp` on the simulated profile, run by ``App.run`` with
Textual's real Linux driver, as ``stackrig --simulate`` runs it, after ``tune_process`` as the
command does. The child's auto-pilot plans a ``--shots`` shoot on the Plan screen and starts it
(not measured). Then this process types ``?`` into the pty every ``--every`` seconds, or as
soon as the previous press's repaint arrived if that is later (one press in flight at a time),
until the Run screen says the session ended: its finishing (finalize, outputs written)
included. ``?`` is the app's help key; it opens the key help (a modal screen) over the Run
screen, and the next press closes it (the Help screen binds ``?`` too), so every press changes
what the screen shows. The Run screen has no key that only updates a widget: ``p`` pauses the
shoot, ``a``, space and Esc abort or stop it, ``r`` and ``x`` only pop a notification there.

**Measured**, "key press -> repaint": from the key's byte written into the pty to the bytes of
the first screen update showing what the press brings up (the Help screen, or the Run screen
again) read back at this end: the byte through Textual's input thread and key parser, the
binding, the screen pushed or popped, the compositor's update rendered to the terminal's
bytes and written by Textual's writer thread. To find that update in the stream, the child
wraps ``App._display`` (the one call Textual makes per screen update) and, after each update,
writes a private OSC sequence naming the screen (``ESC ] 7777 ; n ; Screen BEL``, which a
terminal ignores) through the same driver, so it arrives right after that update's bytes.
Printed: presses, median, p95, max, presses with no such update within 5 s (lost), and the
session's own last frame -> ``stack.tif`` (journaled). Then, to see what blocks the event
loop: opening and closing apart; the presses during whose wait no full garbage collection ran
(``gc.callbacks`` in the app's process, with the times of each one: a collection holds the GIL
and stops every thread); the CPU of the app's process, of its event-loop thread and of the
worker process; the slowest ``App._display`` calls; shots, frames stacked, previews shown.
``--profile-ui DIR`` cProfiles the event-loop thread instead (then the latencies are not the
figures).

Modes, each a fresh app process with the same devices: **threads**, the app as it is (the
stacking worker, its reader thread and OpenCV's threads in the app's process); **off**, frames
arriving, saved, journaled and listed, but not stacked (``rig.session.run.StackingWorker``
replaced by one that drops them), the Run screen still getting a preview every
``preview_every`` frames (the frame just shot, decoded at 1/8 size) so the UI draws as much as
with stacking; **threads-nice**, the app's worker with its threads (and OpenCV's pool) at nice
10 (Linux niceness is per thread); **process** and **process-nice**, a prototype running the
same ``StackingWorker`` in a spawned worker process (at nice 0, or 10): the frames' paths sent
to it, each frame's report, the previews and the coverage sent back and handed to the
session's own callbacks on a relay thread, which writes ``preview.jpg`` and posts the preview
as the worker thread does (the benchmark's; the app stacks on threads). ``--full-gc-every N``
(``gc.set_threshold``'s third: a full collection at most every N middle ones) shows what the
full collections cost. They were what blocked the event loop most, up to a second each, while
Textual's footer kept every key it had ever shown (textualize/textual#6666): the app's own
footer (``rig/tui/widgets/footer.py``) forgets them, and the app freezes what is alive at
start-up out of the collector's way (``gc.freeze``).

**The devices are the benchmark's**: the rail is the simulated rig's (the GRBL emulator on a
pty, through the real driver and ``Rail``), the camera :class:`~benchmarks.simsession.PacedCamera`
serving 24 MP JPEGs rendered beforehand (``bench-out/session-frames/``: rendering takes about
6 s and 1.3 GB a frame), one every ``--interval`` seconds, instead of libgphoto2's virtual camera
in its process; the simulated rig renders no subject before each shot. The owner thread, the
messages, the screens and the session are the app's own.

**Not measured**: a real terminal emulator parsing and drawing the bytes (this end only reads
them); Sixel or kitty graphics; mouse input; anything before the shoot starts. The press rate
is far above an operator's: each press costs the event loop tens of ms of CPU, so the UI's
own load (and the garbage it makes) is part of what the stacker competes with.
"""

from rig.tuning import tune_process

tune_process()  # as the stackrig command does, before OpenCV loads or frames are allocated

import argparse  # noqa: E402  (after tune_process on purpose)
import contextlib  # noqa: E402
import fcntl  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import select  # noqa: E402
import signal  # noqa: E402
import struct  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import termios  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from benchmarks.run import REPO, parse_size  # noqa: E402
from benchmarks.simsession import prerendered  # noqa: E402

TARGET_S = 0.150
COLS, ROWS = 120, 40
CELL_PX = (10, 20)
LOST_S = 5.0  # a press with no repaint by then is counted as lost
KEY = b"?"
MODES = {
    "threads": "threads (the app as it is)",
    "off": "off (frames arrive, previewed, not stacked)",
    "threads-nice": "threads at nice 10 (prototype)",
    "process": "worker process (prototype)",
    "process-nice": "worker process at nice 10 (prototype)",
}
NICE = 10  # the stacking threads' or process's niceness in the "-nice" modes
MARKER = re.compile(rb"\x1b\]7777;(\d+);(\w+)\x07")
MARKER_PREFIX = b"\x1b]7777;"


# ============================================================================ the terminal


@dataclass
class Figures:
    mode: str
    latencies_s: list[float] = field(default_factory=list)
    opened: list[bool] = field(default_factory=list)  # per press: it opened the help (or closed)
    pressed_at: list[float] = field(default_factory=list)  # perf_counter: CLOCK_MONOTONIC
    lost: int = 0
    child: dict[str, Any] = field(default_factory=dict)  # what the app's process said
    wall_s: float = 0.0
    load_average: float = 0.0  # the machine's, over the last minute at the end: ours included

    @property
    def full_gc_hit(self) -> list[bool]:
        """Per press: a full collection ran in the app while it waited for its repaint."""
        gcs = self.child.get("full_gc_at", [])
        return [
            any(start < at + wait and start + spent > at for start, spent in gcs)
            for at, wait in zip(self.pressed_at, self.latencies_s, strict=True)
        ]


def open_pty() -> tuple[int, int]:
    master, slave = os.openpty()
    size = struct.pack("HHHH", ROWS, COLS, COLS * CELL_PX[0], ROWS * CELL_PX[1])
    fcntl.ioctl(slave, termios.TIOCSWINSZ, size)
    return master, slave


def run_mode(mode: str, frames: list[Path], args: argparse.Namespace) -> Figures:
    """One app process on a fresh pty, driven as described above; its figures."""
    master, slave = open_pty()
    ctl_r, ctl_w = os.pipe()  # the child says "go" (the shoot started) and "end" (it ended)
    with tempfile.TemporaryDirectory(prefix="stackrig-tui-bench-") as work:
        result = Path(work) / "child.json"
        env = dict(os.environ, TERM="xterm-256color", COLORTERM="truecolor")
        env.pop("TEXTUAL", None)
        command = [
            sys.executable, "-m", "benchmarks.tui_latency", "--child", mode,
            "--ctl-fd", str(ctl_w), "--result", str(result), "--work", work,
            "--interval", str(args.interval), "--shots", str(len(frames)),
            "--frames", json.dumps([str(p) for p in frames]),
        ]  # fmt: skip
        if args.full_gc_every:
            command += ["--full-gc-every", str(args.full_gc_every)]
        if args.profile_ui:
            command += ["--profile-ui", str(Path(args.profile_ui).resolve() / f"{mode}.prof")]
        start = time.perf_counter()
        child = subprocess.Popen(
            command, stdin=slave, stdout=slave, stderr=slave, pass_fds=(ctl_w,),
            cwd=REPO, env=env, start_new_session=True,
        )  # fmt: skip
        os.close(slave)
        os.close(ctl_w)
        figures = Figures(mode)
        deadline = start + 180 + len(frames) * args.interval * 2
        try:
            terminal(master, ctl_r, figures, args.every, deadline, child)
        finally:
            if child.poll() is None:
                try:
                    child.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)  # our own child's session only
                    child.wait()
            os.close(master)
            os.close(ctl_r)
        figures.wall_s = time.perf_counter() - start
        figures.load_average = os.getloadavg()[0]
        if result.is_file():
            figures.child = json.loads(result.read_text())
        if child.returncode != 0 or "error" in figures.child or not figures.child:
            log = Path(work) / "app.log"
            said = log.read_text(errors="replace")[-3000:] if log.is_file() else ""
            raise SystemExit(
                f"the app's process ({mode}) failed, exit {child.returncode}: "
                f"{figures.child.get('error', '')}\nits log ends: {said}"
            )
    return figures


def terminal(
    master: int,
    ctl: int,
    figures: Figures,
    every_s: float,
    deadline: float,
    child: subprocess.Popen[bytes],
) -> None:
    """Read everything the app writes; type the key as described; until the app exits."""
    carry = b""
    pressing = False
    help_open = False
    pending: tuple[float, str] | None = None  # (pressed at, the screen that press brings up)
    next_at = 0.0
    open_fds = [master, ctl]
    while master in open_fds:
        now = time.perf_counter()
        if now > deadline:
            raise SystemExit("the app's process did not finish in time")
        wake = 0.5
        if pending is not None:
            wake = min(wake, pending[0] + LOST_S - now)
        elif pressing:
            wake = min(wake, next_at - now)
        readable, _, _ = select.select(open_fds, [], [], max(0.0, wake))
        if not readable and child.poll() is not None:
            break  # exited; whatever else holds the pty open (its worker process) is not ours
        if master in readable:
            try:
                data = os.read(master, 1 << 20)
            except OSError:  # EIO: the app's side closed
                data = b""
            arrived = time.perf_counter()
            if not data:
                open_fds.remove(master)
                continue
            buffer = carry + data
            last_end = 0
            for m in MARKER.finditer(buffer):
                last_end = m.end()
                if pending is not None and m.group(2).decode() == pending[1]:
                    figures.latencies_s.append(arrived - pending[0])
                    figures.opened.append(pending[1] == "Help")
                    figures.pressed_at.append(pending[0])
                    help_open = pending[1] == "Help"
                    pending = None
            rest = buffer[last_end:]
            cut = rest.rfind(b"\x1b")  # a marker cut in two by the read: keep its start
            carry = rest[cut:] if cut >= 0 and MARKER_PREFIX.startswith(rest[cut:][:7]) else b""
            carry = carry[-64:]
        if ctl in readable:
            said = os.read(ctl, 1024)
            if not said:
                open_fds.remove(ctl)
            if b"go" in said:
                pressing, next_at = True, time.perf_counter()
            if b"end" in said:
                pressing = False
        now = time.perf_counter()
        if pending is not None and now - pending[0] > LOST_S:
            figures.lost += 1
            help_open = pending[1] == "Help"  # it will most likely take effect
            pending = None
        if pressing and pending is None and now >= next_at:
            pressed = time.perf_counter()
            os.write(master, KEY)
            pending = (pressed, "RunScreen" if help_open else "Help")
            next_at = pressed + every_s


def ms(values: list[float], q: float) -> str:
    return f"{np.percentile(np.array(values) * 1000, q):.0f}" if values else "-"


def report(all_figures: list[Figures], args: argparse.Namespace) -> None:
    w, h = args.size
    print(
        f"key press -> repaint: StackrigApp on a {COLS}x{ROWS} pty (half-block images) during a "
        f"{args.shots}-shot simulated shoot of {w}x{h} JPEGs, one every {args.interval:.2f} s; "
        f"'?' (help on / off) every {args.every:.2f} s"
        + (f"; gc threshold 2 = {args.full_gc_every}" if args.full_gc_every else "")
    )
    print(
        f"  {'stacking':38} {'presses':>7} {'median':>7} {'p95':>7} {'max':>7} {'lost':>4}"
        f"  target p95 < {TARGET_S * 1000:.0f} ms   last frame -> stack.tif"
    )
    for f in all_figures:
        lat, c = f.latencies_s, f.child
        verdict = "met" if lat and np.percentile(lat, 95) < TARGET_S else "MISSED"
        written = c.get("last_frame_to_stack_s")
        stack = f"{written:.1f} s" if written is not None and c["stacked"] else "-"
        print(
            f"  {MODES[f.mode]:38} {len(lat):7d} {ms(lat, 50):>4} ms {ms(lat, 95):>4} ms"
            f" {ms(lat, 100):>4} ms {f.lost:4d}  {verdict:24} {stack}"
        )
    print("  where the time goes (median / p95 ms):")
    for f in all_figures:
        c = f.child
        lat, opened = f.latencies_s, f.opened
        shown = [x for x, o in zip(lat, opened, strict=True) if o]
        hidden = [x for x, o in zip(lat, opened, strict=True) if not o]
        clear = [x for x, hit in zip(lat, f.full_gc_hit, strict=True) if not hit]
        print(
            f"    {f.mode}: help opened {ms(shown, 50)} / {ms(shown, 95)}, closed"
            f" {ms(hidden, 50)} / {ms(hidden, 95)}; the {len(clear)} presses with no full garbage"
            f" collection in their wait: {ms(clear, 50)} / {ms(clear, 95)}"
        )
        threads = ", ".join(c["gc_threads"]) or "-"
        print(
            f"      {c['full_gcs']} full garbage collections (on {threads}; each stops every thread"
            f" of the app): max {c['full_gc_max_s'] * 1000:.0f} ms, {c['full_gc_total_s']:.1f} s in"
            f" all; all collections {c['gc_total_s']:.1f} s;"
            f" {c['tracked_objects'] / 1000:.0f} k objects tracked at the end"
        )
        wall = c["wall_s"]
        worker = (
            f", the worker process {c['worker_cpu_s'] / wall:.2f}" if "process" in f.mode else ""
        )
        slow = ", ".join(f"{s * 1000:.0f}" for s in c["display_slowest_s"])
        print(
            f"      CPU (cores): the app's process {c['cpu_s'] / wall:.2f}, its event loop's thread"
            f" {c['ui_cpu_s'] / wall:.2f}{worker}; {c['displays']} screen updates"
            f" (App._display) median {c['display_median_s'] * 1000:.1f} ms, slowest {slow} ms"
        )
        print(
            f"      the shoot ({c['outcome']}): {c['shots']} shots, {c['stacked']} stacked,"
            f" {c['previews']} previews shown; the camera's least wait for its slot"
            f" {c['camera_least_wait_s']:.2f} s; {f.wall_s:.0f} s for this mode; the machine's"
            f" load average at its end {f.load_average:.1f} (this benchmark's own included)"
        )


# ============================================================================ the app's process


class UnstackedWorker:
    """The stacking worker's interface, stacking nothing: the frames arrive and are dropped.

    The Run screen still gets a preview as often as with stacking (``preview_every`` frames):
    the frame just submitted, decoded at an eighth of its size and fitted to the preview's
    side, standing in for the stack so far, so the UI draws as much as with stacking on.
    """

    def __init__(self, job: Any) -> None:
        self.job = job
        self.frames = 0
        self.backlog = 0

    def start(self) -> "UnstackedWorker":
        return self

    def submit(self, path: Path) -> None:
        import cv2

        self.frames += 1
        job, every = self.job, self.job.preview_every
        if job.on_preview is None or every <= 0 or self.frames % every:
            return
        bgr = cv2.imread(str(path), cv2.IMREAD_REDUCED_COLOR_8)
        if bgr is None:
            return
        scale = min(1.0, job.preview_side / max(bgr.shape[:2]))
        size = (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale))
        rgb = cv2.cvtColor(cv2.resize(bgr, size, interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        job.on_preview(rgb.astype(np.float32) / 255.0, self.frames)

    def finish(self) -> Any:
        from rig.session.stacker import StackOutcome
        from stacking.engine import StackResult
        from stacking.report import Coverage

        verdict = "not stacked (the benchmark's stacking off)"
        coverage = Coverage(0, 0.0, 0.0, 0.0, 0, 0, False, verdict)
        result = StackResult(
            np.zeros((1, 1, 3), np.float32), np.zeros((1, 1), np.uint16), [], None, 0.0, coverage
        )
        return StackOutcome(result, self.job.outputs, [], 0.0, 0.0, 0.0, 0.0, 0.0)

    def abort(self) -> bool:
        return False


def niced_threads_worker() -> type:
    """The app's StackingWorker, its threads at nice :data:`NICE` (Linux: per thread)."""
    from rig.session.stacker import StackingWorker

    class NicedThreads(StackingWorker):
        def _run(self) -> None:
            # This thread, and what it starts (the reader, OpenCV's pool if it starts it), and
            # the native threads already running that are none of Python's (OpenCV's pool).
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICE)
            python = {t.native_id for t in threading.enumerate()}
            for task in os.listdir("/proc/self/task"):
                if int(task) not in python:
                    with contextlib.suppress(OSError):
                        os.setpriority(os.PRIO_PROCESS, int(task), NICE)
            super()._run()

    return NicedThreads


def _stack_in_process(job_args: dict[str, Any], paths: Any, out: Any) -> None:
    """The worker process: a StackingWorker fed the paths sent, its callbacks sent back."""
    import dataclasses

    from rig.session.stacker import StackingWorker, StackJob

    if job_args["nice"]:
        os.nice(job_args["nice"])  # before its threads start: they inherit it
    job = StackJob(
        job_args["settings"],
        job_args["outputs"],
        bit_depth=job_args["bit_depth"],
        strict=job_args["strict"],
        given=job_args["given"],
        on_frame=lambda done: out.put(("frame", done)),
        on_preview=lambda snapshot, fused: out.put(("preview", (snapshot, fused))),
        preview_every=job_args["preview_every"],
        preview_side=job_args["preview_side"],
        on_coverage=(lambda c, picture: out.put(("coverage", (c, picture))))
        if job_args["coverage"]
        else None,
    )
    worker = StackingWorker(job).start()
    while True:
        item = paths.get()
        if item == "abort":
            out.put(("aborted", worker.abort()))
            return
        if item is None:
            try:
                outcome = worker.finish()
            except BaseException as exc:
                out.put(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
                return
            result = dataclasses.replace(  # the 24 MP planes stay here: they are on disk
                outcome.result, image=np.zeros((1, 1, 3), np.float32), depth=np.zeros((1, 1))
            )
            out.put(("done", dataclasses.replace(outcome, result=result)))
            return
        worker.submit(Path(item))


class WorkerProcess:
    """The stacking worker's interface over a StackingWorker in a worker process (prototype)."""

    nice = 0  # the worker process's niceness

    def __init__(self, job: Any) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.job = job
        self._paths: Any = context.Queue()
        self._out: Any = context.Queue()
        job_args = {
            "settings": job.settings,
            "outputs": job.outputs,
            "bit_depth": job.bit_depth,
            "strict": job.strict,
            "given": job.given,
            "preview_every": job.preview_every,
            "preview_side": job.preview_side,
            "coverage": job.on_coverage is not None,
            "nice": self.nice,
        }
        self._process = context.Process(
            target=_stack_in_process, args=(job_args, self._paths, self._out), daemon=True
        )
        self._ended = threading.Event()
        self._end: tuple[str, Any] = ("", None)
        self._submitted = self._handled = 0

    def start(self) -> "WorkerProcess":
        self._process.start()
        threading.Thread(target=self._relay, name="stacker-relay", daemon=True).start()
        return self

    def submit(self, path: Path) -> None:
        self._submitted += 1
        self._paths.put(str(path))

    @property
    def backlog(self) -> int:
        return self._submitted - self._handled

    def _relay(self) -> None:
        job = self.job
        while True:
            kind, value = self._out.get()
            try:
                if kind == "frame":
                    self._handled += 1
                    if job.on_frame is not None:
                        job.on_frame(value)
                elif kind == "preview":
                    if job.on_preview is not None:
                        job.on_preview(*value)
                elif kind == "coverage":
                    if job.on_coverage is not None:
                        job.on_coverage(*value)
                else:
                    self._end = (kind, value)
                    self._ended.set()
                    return
            except Exception:
                traceback.print_exc()

    def _wait(self) -> tuple[str, Any]:
        self._ended.wait()
        self._process.join(10)
        return self._end

    def finish(self) -> Any:
        self._paths.put(None)
        kind, value = self._wait()
        if kind == "error":
            raise value
        return value

    def abort(self) -> bool:
        self._paths.put("abort")
        kind, value = self._wait()
        return bool(value) if kind == "aborted" else False


def child_main(args: argparse.Namespace) -> None:
    """The app's process: the app on this terminal, the benchmark's camera, the auto-pilot."""
    import asyncio
    import logging

    # The app's log (the owner thread logs what failed there) in the work folder, not the user's.
    logging.basicConfig(filename=Path(args.work) / "app.log", level=logging.INFO)

    # As the command does before the app starts: the image widgets ask the terminal first.
    import rig.tui.widgets.images  # noqa: F401
    from benchmarks.simsession import PacedCamera
    from rig.devices import factory
    from rig.profiles import find_profile, load_profile
    from rig.session import run as session_run
    from rig.tui.app import StackrigApp
    from rig.tui.screens.run import RunScreen

    ctl = args.ctl_fd
    frames = [Path(p) for p in json.loads(args.frames)]
    camera = PacedCamera(frames, args.interval)
    opened = factory.open_devices

    def open_devices(profile: Any, simulate: Any, stack: Any, **options: Any) -> Any:
        devices = opened(profile, simulate, stack, camera=False)  # the rail: the simulated rig's
        devices.camera, devices.before_shot = camera, None
        devices.said.append(f"camera: the benchmark's, {len(frames)} frames rendered beforehand")
        return devices

    factory.open_devices = open_devices
    if args.child == "off":
        session_run.StackingWorker = UnstackedWorker  # type: ignore[assignment,misc]
    elif args.child == "threads-nice":
        session_run.StackingWorker = niced_threads_worker()  # type: ignore[assignment,misc]
    elif args.child in ("process", "process-nice"):
        WorkerProcess.nice = NICE if args.child == "process-nice" else 0
        session_run.StackingWorker = WorkerProcess  # type: ignore[assignment,misc]
        # multiprocessing starts its resource tracker on first use, passing it sys.stderr's
        # file descriptor; inside the app sys.stderr is Textual's capture, which has none.
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()

    pauses: list[tuple[int, str, float, float]] = []  # per collection: generation, thread, at, s
    collecting = [0.0]

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collecting[0] = time.perf_counter()
        else:
            spent = time.perf_counter() - collecting[0]
            thread = threading.current_thread().name
            pauses.append((info["generation"], thread, collecting[0], spent))

    gc.callbacks.append(on_gc)
    profile = load_profile(find_profile("simulated"))
    app = StackrigApp(profile, "all", Path(args.work) / "captures")
    display = app._display
    updates = iter(range(1, 1 << 62))
    display_s: list[float] = []

    def marked_display(screen: Any, renderable: Any) -> None:
        if renderable is None or app._batch_count or app._driver is None:
            display(screen, renderable)
            return
        start = time.perf_counter()
        display(screen, renderable)
        display_s.append(time.perf_counter() - start)
        app._driver.write(f"\x1b]7777;{next(updates)};{type(screen).__name__}\x07")

    app._display = marked_display  # type: ignore[method-assign]
    previews: list[int] = []
    result: dict[str, Any] = {}
    ui_cpu: list[float] = []
    started = [0.0, 0.0]
    profiler = None
    if args.profile_ui:
        import cProfile

        profiler = cProfile.Profile()

    async def until(ok: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not ok():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for {what}")
            await asyncio.sleep(0.05)

    async def script(pilot: Any) -> None:
        try:
            await until(lambda: app.rig_screen.here is not None, 60, "the rail's position")
            await pilot.press("p")
            await until(lambda: app.screen.query("#count"), 30, "the plan screen")
            await pilot.click("#count")
            await pilot.press(*str(args.shots))
            await pilot.pause()
            await pilot.press("ctrl+s")
            await until(
                lambda: isinstance(app.screen, RunScreen) and app.screen.total > 0,
                60,
                "the shoot to start",
            )
            run = app.screen
            assert isinstance(run, RunScreen)
            shown = run.preview

            def counted(m: Any) -> None:
                previews.append(m.frames)
                shown(m)

            run.preview = counted  # type: ignore[method-assign]
            if args.full_gc_every:
                first, second, _ = gc.get_threshold()
                gc.set_threshold(first, second, args.full_gc_every)
            pauses.clear()
            started[:] = [time.process_time(), time.thread_time()]
            wall = time.perf_counter()
            if profiler is not None:
                profiler.enable()  # this thread only: the event loop's
            os.write(ctl, b"go\n")
            await until(lambda: run.finished, 120 + args.shots * args.interval * 3, "the end")
            os.write(ctl, b"end\n")
            await asyncio.sleep(1.0)  # the last press's repaint
            if profiler is not None:
                profiler.disable()
                Path(args.profile_ui).parent.mkdir(parents=True, exist_ok=True)
                profiler.dump_stats(args.profile_ui)
            ui_cpu.append(time.thread_time() - started[1])
            ended = run.ended_with
            stacked, latency = 0, None
            with contextlib.suppress(OSError, ValueError):
                journal = (Path(ended.folder) if ended else Path()) / "journal.jsonl"
                events = [json.loads(line) for line in journal.read_text().splitlines()]
                stacked = sum(e.get("type") == "frame_stacked" for e in events)
                latency = events[-1].get("last_frame_to_stack_s")
            slowest = sorted(display_s)[-5:][::-1]
            full = [(at, spent) for generation, _, at, spent in pauses if generation == 2]
            result.update(
                shots=run.done,
                stacked=stacked,
                previews=len(previews),
                outcome=ended.outcome if ended else "?",
                last_frame_to_stack_s=latency,
                worker_cpu_s=resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
                + resource.getrusage(resource.RUSAGE_CHILDREN).ru_stime,
                cpu_s=time.process_time() - started[0],
                ui_cpu_s=ui_cpu[0],
                wall_s=time.perf_counter() - wall,
                displays=len(display_s),
                display_median_s=float(np.median(display_s)) if display_s else 0.0,
                display_slowest_s=slowest,
                camera_least_wait_s=min(camera.waits[1:] or [0.0]),
                full_gcs=len(full),
                full_gc_at=full,
                full_gc_max_s=max((spent for _, spent in full), default=0.0),
                full_gc_total_s=sum(spent for _, spent in full),
                gc_total_s=sum(spent for *_, spent in pauses),
                gc_threads=sorted({th for generation, th, *_ in pauses if generation == 2}),
                tracked_objects=len(gc.get_objects()),
            )
        except BaseException as exc:
            result["error"] = "".join(traceback.format_exception(exc))
        finally:
            app.owner.close()
            app.exit()

    try:
        app.run(auto_pilot=script)
    except BaseException as exc:
        result.setdefault("error", "".join(traceback.format_exception(exc)))
    Path(args.result).write_text(json.dumps(result))


# ============================================================================ command line


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.tui_latency")
    p.add_argument("--shots", type=int, default=30)
    p.add_argument("--size", type=parse_size, default=(6000, 4000))
    p.add_argument("--interval", type=float, default=1.5, help="seconds between shots")
    p.add_argument("--every", type=float, default=0.2, help="seconds between key presses")
    p.add_argument("--modes", default=",".join(MODES), help="of: " + ", ".join(MODES))
    p.add_argument(
        "--profile-ui",
        metavar="DIR",
        help="cProfile the app's event-loop thread while the keys are pressed: DIR/MODE.prof "
        "(it slows that thread: the latencies are not the figures then)",
    )
    p.add_argument(
        "--full-gc-every",
        type=int,
        metavar="N",
        help="in the app's process, once the shoot started: a full garbage collection at most "
        "every N middle-generation ones (gc.set_threshold's third; Python's default 10)",
    )
    # the app's process (this module runs itself there)
    p.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    p.add_argument("--ctl-fd", type=int, help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--frames", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child_main(args)
        return
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.shots < 2 or args.interval < 0 or any(m not in MODES for m in modes):
        p.error(f"--shots must be 2 or more, --interval >= 0, --modes of {', '.join(MODES)}")
    width, height = args.size
    frames = prerendered(width, height, args.shots)
    all_figures = []
    for mode in modes:
        print(f"  {MODES[mode]} ...", flush=True)
        all_figures.append(run_mode(mode, frames, args))
    report(all_figures, args)


if __name__ == "__main__":
    main()
