"""Saved rig profiles: :mod:`~rig.profiles.schema` says what one holds and validates it,
:mod:`~rig.profiles.store` loads, saves, finds and overrides them. Imports no OpenCV."""

from rig.profiles.store import *  # noqa: F403  (the store's __all__ is the package's API)
from rig.profiles.store import __all__ as __all__
