"""Lens focus stepping on a real camera: its settings seen through lens_focus.ConfigAccess.

Works with anything that has ``config_keys``, ``get``, ``set`` and ``info``: a
:class:`~rig.devices.gphoto.GPhotoCamera` in this process or a
:class:`~rig.devices.camera_process.CameraProcess`, whose focus steps then have deadlines too.
Imports no gphoto2, so a parent of a camera process stays free of it.
"""

from __future__ import annotations

from typing import Protocol

from rig.devices.camera_child import CameraInfo, ConfigValue
from rig.devices.lens_focus import LensFocusDriver


class CameraConfig(Protocol):
    """The settings calls of a connected camera that lens focus stepping uses."""

    @property
    def info(self) -> CameraInfo | None: ...

    def config_keys(self) -> list[str]: ...

    def get(self, key: str) -> ConfigValue: ...

    def set(self, key: str, value: str | int | float | bool) -> None: ...


class CameraSettings:
    """:class:`rig.devices.lens_focus.ConfigAccess` on top of a connected camera."""

    def __init__(self, camera: CameraConfig) -> None:
        self.camera = camera

    def keys(self) -> list[str]:
        return self.camera.config_keys()

    def get(self, key: str) -> tuple[str, object, list[str], tuple[float, float, float] | None]:
        value = self.camera.get(key)
        return value.type, value.value, list(value.choices), value.range

    def set(self, key: str, value: object) -> None:
        if not isinstance(value, str | int | float):  # bool is an int
            raise TypeError(f"{key}: a camera setting takes text or a number, not {value!r}")
        self.camera.set(key, value)

    def model(self) -> str:
        info = self.camera.info
        return info.model if info else "the camera"


def lens_focus(
    camera: CameraConfig, *, um_per_step: float = 1.0, step_size: int = 1
) -> LensFocusDriver:
    """A focus drive that steps the lens of ``camera`` (connected) instead of moving a rail."""
    return LensFocusDriver(CameraSettings(camera), um_per_step=um_per_step, step_size=step_size)
