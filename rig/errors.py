"""One error hierarchy for the rig side. Every message says what happened and what to do."""

from __future__ import annotations


class RigError(Exception):
    """Base class of every error stackrig raises on purpose outside the stacking engine."""


class RailError(RigError):
    """The focus rail or stage: connection, protocol, motion, limits."""


class ControllerRestarted(RailError):
    """The rail controller restarted under a call (power dip, reset, USB glitch): its position
    count restarted too, so the rail is no longer referenced. A shoot must not carry on."""


class LinkLost(RailError):
    """The serial link itself failed (a cable pulled, the adapter gone): connecting again may
    bring it back; whether the position survived, the next connect tells."""


class CameraError(RigError):
    """The camera: connection, settings, capture, download."""


class ProfileError(RigError):
    """A rig profile that cannot be loaded or is not valid."""


class OutputError(RigError):
    """An output path that cannot or must not be written (checked before the work starts)."""


class Interrupted(RigError):
    """The operator pressed Ctrl-C; the message says what was and was not written."""


class SessionError(RigError):
    """A capture session's folder or journal cannot be used as it is."""


class BatchError(RigError):
    """A batch cannot start as asked: no stacks, a cluster that cannot be reached or used."""
