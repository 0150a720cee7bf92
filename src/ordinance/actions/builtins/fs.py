"""``fs.*``: workspace file actions with state probes and built-in compensation (CONTRACT §6.2, §7, §12).

Every operation goes through :class:`~ordinance.governance.paths.WorkspaceFS`, i.e. descriptor-based,
component-by-component resolution under the workspace root with symlink rejection and protected
paths (§6.2).

These actions are ``async`` functions that do their (bounded, local) I/O inline in the event loop
rather than in the worker pool: only regular files and directories are touched, the final open uses
``O_NONBLOCK`` and FIFOs, devices and sockets are refused, so nothing here can block indefinitely.

State (§7.1): the probe of each action digests ``{"path", "exists", "mode", "sha256"}`` of its target
(``mode`` is the full ``st_mode``, ``sha256`` the hex digest of a regular file's bytes, otherwise
``null``). The snapshot's ``restore`` keeps what undoing needs; file content is kept up to
:data:`RESTORE_LIMIT` bytes, beyond which ``restore`` is ``None`` and compensation reports that it
cannot restore (the compensation then ends ``failed``, never silently wrong).

Compensation (§7.3/§7.4): ``fs.write`` and ``fs.delete`` use ``fs_restore`` (put back the previous
bytes and mode, or remove what did not exist before); ``fs.mkdir`` uses ``fs_delete`` (remove the
directories it created, deepest first, only when empty). After a successful compensation the probe
digest equals the pre-state digest again.
"""

from __future__ import annotations

import base64
import stat as _stat
from typing import Any

from pydantic import Field, StrictInt, StrictStr

from ...contract.canonical import digest, digest_bytes
from ...contract.models import CompensationType
from ...governance.paths import FileState, WorkspaceFS
from ..registry import ActionContext, ActionFailure, StateSnapshot, default_registry
from ._common import Payload, as_dict, os_failure, path_list, workspace_fs

__all__ = [
    "RESTORE_LIMIT",
    "FsDelete",
    "FsMkdir",
    "FsRead",
    "FsWrite",
    "delete",
    "mkdir",
    "probe_dir",
    "probe_file",
    "probe_read",
    "read",
    "remove_created_dirs",
    "restore_file",
    "state_digest",
    "write",
]

#: Largest previous content kept in a snapshot for ``fs_restore``.
RESTORE_LIMIT = 16 * 1024 * 1024


class FsWrite(Payload):
    path: StrictStr
    content: StrictStr
    mode: StrictInt | None = Field(default=None, ge=0, le=0o777)


class FsRead(Payload):
    path: StrictStr


class FsDelete(Payload):
    path: StrictStr


class FsMkdir(Payload):
    path: StrictStr


# ---------------------------------------------------------------------- state

def state_digest(path: str, state: FileState) -> str:
    """§7.1 digest of one path's state."""
    return digest({"path": path, "exists": state.exists, "mode": state.mode, "sha256": state.sha256})


def _snapshot(fs: WorkspaceFS, path: str, keep_bytes: int) -> FileState:
    try:
        return fs.snapshot(path, keep_bytes=keep_bytes)
    except OSError as exc:
        raise os_failure(exc, "probe") from None


def probe_file(payload: Any, ctx: ActionContext) -> StateSnapshot:
    """Digest of the target file, with its previous bytes and mode for ``fs_restore``."""
    path = as_dict(payload)["path"]
    state = _snapshot(workspace_fs(ctx), path, RESTORE_LIMIT)
    restore: dict[str, Any] | None
    if not state.exists:
        restore = {"path": path, "exists": False}
    elif state.is_dir:
        restore = {"path": path, "exists": True, "kind": "dir", "mode": _stat.S_IMODE(state.mode or 0)}
    elif state.content is None:
        restore = None  # larger than RESTORE_LIMIT: cannot be restored
    else:
        restore = {
            "path": path, "exists": True, "kind": "file", "mode": _stat.S_IMODE(state.mode or 0),
            "content_b64": base64.b64encode(state.content).decode("ascii"),
        }
    return StateSnapshot(digest=state_digest(path, state), restore=restore)


def probe_read(payload: Any, ctx: ActionContext) -> StateSnapshot:
    """Digest of the file ``fs.read`` reads (nothing kept: a read needs no undo)."""
    path = as_dict(payload)["path"]
    return StateSnapshot(digest=state_digest(path, _snapshot(workspace_fs(ctx), path, 0)))


def probe_dir(payload: Any, ctx: ActionContext) -> StateSnapshot:
    """Digest of the target directory, and the topmost ancestor ``fs.mkdir`` would create."""
    path = as_dict(payload)["path"]
    fs = workspace_fs(ctx)
    state = _snapshot(fs, path, 0)
    created_from = None
    if not state.exists:
        parts = path.split("/")
        for i in range(1, len(parts) + 1):
            prefix = "/".join(parts[:i])
            try:
                missing = not fs.exists(prefix)
            except OSError as exc:
                raise os_failure(exc, "probe") from None
            if missing:
                created_from = prefix
                break
    return StateSnapshot(digest=state_digest(path, state), restore={"path": path, "created_from": created_from})


def restore_file(payload: Any, before: StateSnapshot, ctx: ActionContext) -> dict[str, Any]:
    """``fs_restore``: put the target back as it was in ``before`` (content and mode, or absence)."""
    path = as_dict(payload)["path"]
    restore = before.restore
    if restore is None:
        raise ActionFailure(
            f"fs_restore: cannot restore {path!r}: its previous content was not kept (larger than "
            f"{RESTORE_LIMIT} bytes)", recoverable=False)
    fs = workspace_fs(ctx)
    try:
        if not restore["exists"]:
            current = fs.snapshot(path)
            if current.exists:
                fs.delete(path)
            return {"path": path, "restored": "absent"}
        if restore["kind"] == "dir":
            fs.mkdir(path, parents=False, mode=restore["mode"])
            return {"path": path, "restored": "dir"}
        fs.write_bytes(path, base64.b64decode(restore["content_b64"]), mode=restore["mode"])
        return {"path": path, "restored": "file"}
    except OSError as exc:
        raise os_failure(exc, "fs_restore") from None


def remove_created_dirs(payload: Any, before: StateSnapshot, ctx: ActionContext) -> dict[str, Any]:
    """``fs_delete`` for ``fs.mkdir``: remove the directories it created, deepest first, if empty."""
    path = as_dict(payload)["path"]
    created_from = (before.restore or {}).get("created_from")
    removed: list[str] = []
    if created_from is None:
        return {"path": path, "removed": removed}
    fs = workspace_fs(ctx)
    parts = path.split("/")
    stop = len(created_from.split("/"))
    try:
        for i in range(len(parts), stop - 1, -1):
            rel = "/".join(parts[:i])
            if fs.rmdir(rel):
                removed.append(rel)
    except OSError as exc:
        raise os_failure(exc, "fs_delete") from None
    return {"path": path, "removed": removed}


# ---------------------------------------------------------------------- actions

@default_registry.action(
    "fs.write", input=FsWrite, paths=path_list("path"), probe=probe_file,
    compensation_type=CompensationType.FS_RESTORE, compensate=restore_file,
)
async def write(payload: FsWrite, ctx: ActionContext) -> dict[str, Any]:
    """Atomically write UTF-8 text ``content`` to ``path`` (the parent directory must exist).

    ``mode`` (0..0o777) defaults to the replaced file's mode, or 0o644 for a new file.
    Output: ``{"path", "bytes", "digest"}``.
    """
    try:
        data = payload.content.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ActionFailure(f"fs.write: content is not encodable as UTF-8 ({exc.reason})", recoverable=False) from None
    try:
        workspace_fs(ctx).write_bytes(payload.path, data, mode=payload.mode)
    except OSError as exc:
        raise os_failure(exc, "fs.write") from None
    return {"path": payload.path, "bytes": len(data), "digest": digest_bytes(data)}


@default_registry.action("fs.read", input=FsRead, read_only=True, paths=path_list("path"), probe=probe_read)
async def read(payload: FsRead, ctx: ActionContext) -> dict[str, Any]:
    """Read regular file ``path`` as UTF-8 text (at most 64 MiB; a file that is not UTF-8 fails the step).

    Output: ``{"path", "content", "digest"}`` (``digest`` of the raw bytes).
    """
    try:
        data = workspace_fs(ctx).read_bytes(payload.path)
    except OSError as exc:
        raise os_failure(exc, "fs.read") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ActionFailure(
            f"fs.read: {payload.path!r} is not UTF-8 text (byte {exc.start})", recoverable=False,
            details={"path": payload.path, "digest": digest_bytes(data)}) from None
    return {"path": payload.path, "content": text, "digest": digest_bytes(data)}


@default_registry.action(
    "fs.delete", input=FsDelete, paths=path_list("path"), probe=probe_file,
    compensation_type=CompensationType.FS_RESTORE, compensate=restore_file,
)
async def delete(payload: FsDelete, ctx: ActionContext) -> dict[str, Any]:
    """Delete file (or empty directory) ``path``; deleting what does not exist succeeds with ``deleted: false``."""
    try:
        deleted = workspace_fs(ctx).delete(payload.path)
    except OSError as exc:
        raise os_failure(exc, "fs.delete") from None
    return {"path": payload.path, "deleted": deleted}


@default_registry.action(
    "fs.mkdir", input=FsMkdir, paths=path_list("path"), probe=probe_dir,
    compensation_type=CompensationType.FS_DELETE, compensate=remove_created_dirs,
)
async def mkdir(payload: FsMkdir, ctx: ActionContext) -> dict[str, Any]:
    """Create directory ``path`` and any missing parents (mode 0o755); an existing directory gives ``created: false``."""
    try:
        created = workspace_fs(ctx).mkdir(payload.path, parents=True)
    except OSError as exc:
        raise os_failure(exc, "fs.mkdir") from None
    return {"path": payload.path, "created": created}
