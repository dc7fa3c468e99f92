"""One exception tree for the whole project.

Every error the library raises on purpose derives from :class:`EotriageError`, so a payload
integrator can catch one type.  Input problems also subclass :class:`ValueError`, model problems
:class:`RuntimeError`, so code written against the builtins keeps working.
"""

from __future__ import annotations


class EotriageError(Exception):
    """Root of all eotriage errors."""


class ConfigError(EotriageError, ValueError):
    """Bad settings: unknown sensor, impossible tile size, unreadable settings file."""


class OutputError(EotriageError, OSError):
    """An output path that cannot be written: a file where a folder must be, no permission, a
    read-only or virtual file system (``/proc``)."""


class InputError(EotriageError, ValueError):
    """A scene or file that cannot be used: missing band, not a GeoTIFF, wrong CRS, truncated."""


class UnknownSensorError(ConfigError):
    """A sensor profile name that is not known."""


class EmptySceneError(InputError):
    """A scene with no usable samples (no band files, or every sample NaN / nodata)."""


class TileError(InputError):
    """A single tile could not be read or processed; recorded, the scene goes on."""


class ModelError(EotriageError, RuntimeError):
    """A model file that is missing, corrupt (hash mismatch) or fails to run."""


class ComputeFaultError(TileError):
    """Dual execution of a model gave outputs that no two runs agree on (a silent compute
    fault that could not be outvoted); the tile is recorded as failed, the scene goes on."""


class StageTimeout(TileError):
    """A stage (a tile's detectors) ran past its watchdog limit and was abandoned for that
    tile; recorded, the scene goes on."""


class PacketError(EotriageError, ValueError):
    """A downlink packet that is malformed or fails its checksum."""


class CheckpointError(InputError):
    """A checkpoint that does not belong to the run being resumed, or cannot be read."""


class LlmTimeout(ModelError):
    """The report took longer than ``ReportSettings.timeout_s``."""


class OutboxError(EotriageError, OSError):
    """The outbox cannot be used: locked by another process, unreadable, or a packet is corrupt."""


class UplinkError(InputError):
    """An uplink bundle that is rejected: bad signature, old version, tampered or invalid file."""


class StoreError(EotriageError):
    """The detection store cannot be opened, read or written."""


class QuestionError(InputError):
    """A question that cannot be understood or answered (bad area, time, class...)."""


def cause_text(exc: BaseException, limit: int = 200) -> str:
    """One line saying what went wrong, from the innermost cause of a library exception.

    rasterio, for instance, raises "Read failed. See previous exception for details." with
    GDAL's real message ("TIFFReadEncodedTile() failed", ...) as ``__cause__``.
    """
    inner: BaseException = exc
    seen = {id(inner)}
    while inner.__cause__ is not None and id(inner.__cause__) not in seen:
        inner = inner.__cause__
        seen.add(id(inner))
    text = str(inner).strip() or type(inner).__name__
    return " ".join(text.split())[:limit]
