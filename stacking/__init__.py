"""Pure focus-stacking engine: arrays and dataclasses in, arrays and dataclasses out.

Only :mod:`stacking.io` touches files. Nothing here imports ``rig``, ``textual``,
``gphoto2`` or ``serial``.
"""
