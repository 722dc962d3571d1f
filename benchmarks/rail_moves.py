"""Per-move overhead of the GRBL driver against the real GRBL 1.1h firmware.

``python -m benchmarks.rail_moves [--moves 20] [--step-um 25] [--steps-per-mm 3200]``

The firmware runs on a simulated Uno (``tests/grbl_sim.py``, built from ``../shared/tools/
grbl-sim``). A :class:`rig.devices.motion.Rail` with a backlash approach makes ``--moves``
moves of ``--step-um`` in the approach direction, as a focus stack does. For each move:

- **wall**: the time ``Rail.move_to`` takes, from the call to its return (the motion has ended
  and the controller reported Idle at the target), less any time the simulation fell behind
  the wall clock during that move (``lag_s``; a real board does not lag);
- **motion**: first to last STEP pulse of that move, in simulated time, from the runner's
  status file (``last_burst``): what the firmware's own pulses show. Moves are 0.15 s apart
  (a settle time), so each is a burst of its own;
- **overhead** = wall - motion.

Run twice: with ``$1=255`` (motors held between moves: what a focus rail wants) and with GRBL's
default ``$1=25``, where GRBL waits 25 ms with the motor on after every move before it reports
the end (``st_go_idle``), which no host can avoid. ``lag`` is how far the simulation fell behind
the wall clock during the run (it must be near 0 for the figures to mean anything).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from rig.devices.motion import MotionSettings, Rail
from rig.devices.rails.grbl import GrblDriver
from tests.grbl_sim import GrblSim

SETTLE_S = 0.15  # between moves: longer than the runner's 0.1 s burst gap


def measure(
    folder: Path, *, hold: int, moves: int, step_um: float, steps_per_mm: float
) -> dict[str, float]:
    with GrblSim(folder) as sim:
        driver = GrblDriver(str(sim.link), speed_mm_s=5.0)
        driver.connect()
        for setting in (f"$1={hold}", f"$102={steps_per_mm:g}"):
            driver._send(setting)
        driver.close()
        rail = Rail(driver, MotionSettings(backlash_um=50.0, speed_um_s=5000.0))
        rail.connect()
        rail.set_zero()
        rail.move_to(0.0)  # from the approach side, so every move below is one motion
        lag0 = float(sim.status()["lag_s"])
        walls, motions = [], []
        for i in range(1, moves + 1):
            time.sleep(SETTLE_S)
            lag_before = float(sim.status()["lag_s"])
            start = time.perf_counter()
            rail.move_to(i * step_um)
            wall = time.perf_counter() - start
            # Time the simulation fell behind the wall clock is the simulator's, not the
            # driver's: a real Uno never lags (the status file has it to 1 ms).
            walls.append(wall - (float(sim.status()["lag_s"]) - lag_before))
            time.sleep(SETTLE_S)
            first, last, pulses = sim.last_burst()
            expected = round(step_um * steps_per_mm / 1000.0)
            if pulses != expected:
                raise SystemExit(f"move {i}: {pulses} pulses, expected {expected}")
            motions.append(last - first)
        lag = float(sim.status()["lag_s"]) - lag0
        rail.close()
    overheads = [w - m for w, m in zip(walls, motions, strict=True)]
    return {
        "wall_ms": 1000 * statistics.median(walls),
        "motion_ms": 1000 * statistics.median(motions),
        "overhead_ms": 1000 * statistics.median(overheads),
        "overhead_max_ms": 1000 * max(overheads),
        "lag_ms": 1000 * lag,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--moves", type=int, default=20)
    parser.add_argument("--step-um", type=float, default=25.0)
    parser.add_argument("--steps-per-mm", type=float, default=3200.0)
    args = parser.parse_args()
    print(
        f"GRBL 1.1h (real firmware, simulated Uno): {args.moves} moves of {args.step_um:g} um "
        f"with a backlash approach, {args.steps_per_mm:g} steps/mm, 5 mm/s, $122=10 mm/s^2"
    )
    print(f"{'':10} {'wall/move':>10} {'motion':>8} {'overhead':>9} {'worst':>7} {'lag':>6}")
    with tempfile.TemporaryDirectory(prefix="stackrig-bench-") as tmp:
        for hold in (255, 25):
            r = measure(
                Path(tmp) / f"hold{hold}",
                hold=hold,
                moves=args.moves,
                step_um=args.step_um,
                steps_per_mm=args.steps_per_mm,
            )
            print(
                f"{f'$1={hold}':10} {r['wall_ms']:8.1f}ms {r['motion_ms']:6.1f}ms "
                f"{r['overhead_ms']:7.1f}ms {r['overhead_max_ms']:5.1f}ms {r['lag_ms']:4.0f}ms"
            )
    print("(medians; overhead = wall - first-to-last STEP pulse; target: <= 30 ms at $1=255)")


if __name__ == "__main__":
    main()
