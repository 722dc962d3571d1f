"""Lens focus stepping on a real camera: a GPhotoCamera seen through lens_focus.ConfigAccess."""

from __future__ import annotations

from rig.devices.gphoto import GPhotoCamera
from rig.devices.lens_focus import LensFocusDriver


class CameraSettings:
    """:class:`rig.devices.lens_focus.ConfigAccess` on top of a connected GPhotoCamera."""

    def __init__(self, camera: GPhotoCamera) -> None:
        self.camera = camera

    def keys(self) -> list[str]:
        return self.camera.config_keys()

    def get(self, key: str) -> tuple[str, object, list[str], tuple[float, float, float] | None]:
        value = self.camera.get(key)
        return value.type, value.value, list(value.choices), value.range

    def set(self, key: str, value: object) -> None:
        self.camera.set(key, value)  # type: ignore[arg-type]

    def model(self) -> str:
        return self.camera.info.model if self.camera.info else "the camera"


def lens_focus(
    camera: GPhotoCamera, *, um_per_step: float = 1.0, step_size: int = 1
) -> LensFocusDriver:
    """A focus drive that steps the lens of ``camera`` (connected) instead of moving a rail."""
    return LensFocusDriver(CameraSettings(camera), um_per_step=um_per_step, step_size=step_size)
