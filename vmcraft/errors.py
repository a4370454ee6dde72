"""The exception tree: one root, a subclass per layer.

Callers written for libguestfs catch ``RuntimeError``, so the root inherits from it. Where a
built-in exception is what a caller would naturally catch (a missing file, a bad argument, a
refused permission), the layer's subclass also inherits from that built-in.
"""

from __future__ import annotations

from collections.abc import Sequence


class VMCraftError(RuntimeError):
    """Root of every error VMCraft raises on purpose."""


class StateError(VMCraftError):
    """A call made at the wrong point of a handle's life (before launch, after close)."""


class CommandError(VMCraftError):
    """An external program failed, timed out, or could not be started."""

    def __init__(
        self,
        argv: Sequence[str],
        returncode: int | None,
        stderr: str,
        reason: str | None = None,
    ) -> None:
        self.argv = list(argv)
        self.returncode = returncode
        self.stderr = stderr
        if reason is None:
            detail = stderr.strip().splitlines()[-1] if stderr.strip() else "no error output"
            reason = f"exit status {returncode}: {detail}"
        self.reason = reason
        super().__init__(f"{self.argv[0]} failed: {reason}")


class ToolMissingError(CommandError, FileNotFoundError):
    """A host program VMCraft needs is not installed."""

    def __init__(self, argv: Sequence[str]) -> None:
        super().__init__(argv, None, "", reason="not found on PATH (is its package installed?)")


class ImageError(VMCraftError):
    """An image file cannot be used: missing, unreadable, corrupt, unsafe or wrongly typed."""


class ImageNotFoundError(ImageError, FileNotFoundError):
    """The image file does not exist."""


class UnsafeImageError(ImageError, PermissionError):
    """The image's header points at files outside its own folder."""


class ImageFormatError(ImageError, ValueError):
    """The image is not of the format it claims, or not an image at all."""


class AttachError(ImageError):
    """Turning an image into a raw view failed after every attempt."""


class BackendUnavailableError(ImageError):
    """The backend asked for cannot work on this host (no nbd devices, say)."""


class VolumeError(VMCraftError):
    """Partition tables, LVM or the mapping of guest devices failed."""


class DeviceNotFoundError(VolumeError, ValueError):
    """A device name that names no device of this guest."""


class FilesystemError(VMCraftError):
    """Probing, mounting or unmounting a filesystem failed."""


class MountError(FilesystemError):
    """A filesystem could not be mounted or unmounted."""


class DriverMissingError(MountError):
    """No driver on this host can mount the filesystem in the way asked for."""


class GuestFileError(VMCraftError):
    """An operation on a file inside the guest failed."""


class GuestFileNotFoundError(GuestFileError, FileNotFoundError):
    """A guest path names nothing."""


class GuestPathError(GuestFileError, ValueError):
    """A guest path is malformed: not absolute, contains NUL, or loops."""


class GuestArgumentError(GuestFileError, ValueError):
    """A file call was given an argument outside what it accepts (a mode, size, type...)."""


class SymlinkLoopError(GuestPathError):
    """Resolving a guest path met more symbolic links than Linux follows (ELOOP)."""


class ReadOnlyError(GuestFileError, PermissionError):
    """A write was asked of a read-only handle or mount."""


class InspectionError(VMCraftError):
    """Operating-system inspection failed."""
