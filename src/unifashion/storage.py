"""The package's one home for durable writes and checksum manifests: writing a file so that a crash
leaves the old or the whole new one (fsynced unless the caller says otherwise), the manifest that lists every file of a saved model, checkpoint
or index segment by size and sha256 (written last, checked before anything is loaded), and replacing a
whole directory so that a crash at any instant leaves either the old or the new complete one.

Replacing `<name>` by a complete temporary sibling `<name>.new-<pid>` (`replace_dir`):
  1. exchange the two names in one step (Linux renameat2 RENAME_EXCHANGE): `<name>` is the new
     directory, `<name>.new-<pid>` the old one, which is then deleted;
  2. where the kernel or filesystem cannot exchange: rename `<name>` to `<name>.old-<pid>`, rename the
     new one in, delete the old one. Between the two renames `<name>` does not exist;
     `recover_dir` (called before every load) renames the untouched `<name>.old-<pid>` back.
Leftovers of interrupted replacements (siblings of a dead process) are deleted by the next replacement.

`WriterLock` keeps two writers of one folder apart (an flock on `<folder>/.writer.lock`, in any process):
the second waits up to its `wait_seconds`, then is refused with one line naming the holder's pid.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import threading
import time
from pathlib import Path

MANIFEST = "manifest.json"
# a saved model's manifest: nothing but its files (checkpoints and indexes put their own fields beside)
MANIFEST_FORMAT = "unifashion-files"
MANIFEST_VERSION = 1
_LEFTOVER = re.compile(r"^(?P<name>.+)\.(?P<kind>new|old)-(?P<pid>\d+)$")
_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100
_exchange_supported: bool | None = None  # None: not tried yet; False: use two renames
LOCK_FILE = ".writer.lock"
_LOCK_POLL_SECONDS = 0.05
_held_locks = threading.local()  # .folders: {real folder path: [fd, depth]} of the locks this thread holds


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- fsync and atomic files ----------------------------------------------------------------------


def fsync_file(path: Path) -> None:
    """Flush a file's data to the disk."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (new names, renames) to the disk; a no-op where refused."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:  # some filesystems refuse fsync on directories
        pass
    finally:
        os.close(fd)


def temporary_sibling(path: Path) -> Path:
    """`.<name>.tmp-<pid>` beside `path`: where a file is written before it is renamed to `path`."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def replace_file(tmp: Path, path: Path, *, durable: bool = True) -> None:
    """Rename the complete file `tmp` over `path`. `durable`: `tmp` fsynced first and the folder after,
    so that the new file also survives a power cut (not only a killed process)."""
    if durable:
        fsync_file(tmp)
    os.replace(tmp, path)
    if durable:
        fsync_dir(Path(path).parent)


def write_bytes_atomic(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Write `path` (its folder created if need be) into a temporary sibling renamed over it: a reader
    sees the old file or the whole new one. `durable` (the default): fsynced, see `replace_file`;
    only a writer of many files into a folder that is itself published whole turns it off."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        replace_file(tmp, path, durable=durable)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str, *, durable: bool = True) -> None:
    """`write_bytes_atomic` of `text` as UTF-8."""
    write_bytes_atomic(path, text.encode("utf-8"), durable=durable)


# ---- checksum manifests --------------------------------------------------------------------------


def file_entry(path: Path) -> dict:
    """A file's manifest entry, the one rule every manifest follows: its size and sha256."""
    return {"bytes": path.stat().st_size, "sha256": sha256_file(path)}


def file_entries(directory: Path) -> dict[str, dict]:
    """fsync every file under `directory` (but its manifest) and return {relative path: entry}."""
    directory = Path(directory)
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(directory).as_posix()
        if rel == MANIFEST:
            continue
        fsync_file(path)
        files[rel] = file_entry(path)
    return files


def save_manifest(directory: Path, manifest: dict, *, sort_keys: bool = True) -> None:
    """Write `manifest` as `directory/manifest.json`, atomically and durably."""
    write_text_atomic(Path(directory) / MANIFEST, json.dumps(manifest, indent=1, sort_keys=sort_keys) + "\n")


def write_manifest(directory: Path, header: dict | None = None) -> dict:
    """fsync every file under `directory`, then write `manifest.json` last: `header` (by default a
    model's format and version; a checkpoint gives its own) and `files`, the entry of each file by
    path relative to `directory`. Returns the manifest."""
    directory = Path(directory)
    files = file_entries(directory)
    manifest = {**(header or {"format": MANIFEST_FORMAT, "format_version": MANIFEST_VERSION}), "files": files}
    save_manifest(directory, manifest)
    folders = {directory} | {parent for rel in files for parent in (directory / rel).parents
                             if directory in parent.parents}
    for folder in sorted(folders):
        fsync_dir(folder)
    return manifest


def read_manifest(directory: Path, error: type[Exception], *, format: str | None = MANIFEST_FORMAT,
                  version: int = MANIFEST_VERSION, hint: str = "") -> dict | None:
    """`directory/manifest.json` as a dict when it is of this `format` (None: one without a format
    name, as checkpoints write) and `version`; None when there is none; `error` with one line otherwise."""
    path = Path(directory) / MANIFEST
    tail = f"; {hint}" if hint else ""
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:  # JSON or UTF-8
        raise error(f"{path}: unreadable manifest (not valid JSON: {e}){tail}".splitlines()[0]) from None
    except OSError as e:
        raise error(f"{path}: unreadable manifest ({e.strerror or type(e).__name__}){tail}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != format:
        found = manifest.get("format") if isinstance(manifest, dict) else type(manifest).__name__
        raise error(f"{path}: not a {format or 'checkpoint'} manifest (format {found!r}){tail}")
    if manifest.get("format_version") != version:
        raise error(f"{path}: format_version {manifest.get('format_version')!r}, this version reads {version}")
    return manifest


def check_files(folder: Path, files: dict, error: type[Exception], *, checksums: bool = True, hint: str = "",
                listed_in: Path | None = None) -> None:
    """Every file that `files` ({path relative to `folder`: entry}) lists is in `folder` with its size
    and (with `checksums`) its sha256; otherwise `error` with one line naming the first bad file.
    Files not listed are not read here and are ignored. `listed_in`: the manifest holding the list
    (default: the folder's own), named in errors about the list itself."""
    folder = Path(folder)
    where = listed_in or folder / MANIFEST
    tail = f"; {hint}" if hint else ""
    if not isinstance(files, dict):
        raise error(f"{where}: malformed file list{tail}")
    root = folder.resolve()
    for rel, expected in sorted(files.items()):
        file = folder / rel
        if root not in file.resolve().parents:
            raise error(f"{where}: lists {rel!r}, outside the directory")
        if not file.is_file():
            raise error(f"{file}: missing{tail}")
        try:
            want_bytes, want_sha = int(expected["bytes"]), str(expected["sha256"])
        except (KeyError, TypeError, ValueError):
            raise error(f"{where}: malformed entry for {rel!r}{tail}") from None
        size = file.stat().st_size
        if size != want_bytes:
            raise error(f"{file}: truncated or altered ({size} bytes, the manifest says {want_bytes}){tail}")
        if checksums and sha256_file(file) != want_sha:
            raise error(f"{file}: corrupt (sha256 checksum mismatch with the manifest){tail}")


def verify_manifest(directory: Path, error: type[Exception], *, checksums: bool = True, hint: str = "",
                    format: str | None = MANIFEST_FORMAT, version: int = MANIFEST_VERSION) -> dict | None:
    """The manifest of `directory` (`read_manifest`) when every file it lists checks out
    (`check_files`); None when there is no manifest; `error` with one line otherwise."""
    manifest = read_manifest(directory, error, format=format, version=version, hint=hint)
    if manifest is not None:
        check_files(directory, manifest.get("files"), error, checksums=checksums, hint=hint)
    return manifest


# ---- one writer at a time ------------------------------------------------------------------------


class WriterLock:
    """`with WriterLock(folder, error, wait_seconds=...)`: hold `folder`'s writer lock for the block.

    An exclusive flock on `folder/.writer.lock` (released by the kernel when the holder dies, so a
    killed writer never leaves it taken), polled until `wait_seconds` have passed; then `error` with
    one line naming the holder's pid, which the holder writes into the file. Re-entrant within a
    thread: a `with` inside another on the same folder (this object or another) just nests, where a
    second flock would wait for the thread itself. Other threads and processes are kept apart."""

    def __init__(self, folder: Path, error: type[Exception], *, wait_seconds: float = 0.0):
        self.folder = Path(folder)
        self.error = error
        self.wait_seconds = max(0.0, float(wait_seconds))

    def __enter__(self) -> "WriterLock":
        held = _thread_locks()
        key = os.path.realpath(self.folder)  # a symlinked path is the same folder
        if key in held:
            held[key][1] += 1
        else:
            held[key] = [self._acquire(), 1]
        return self

    def __exit__(self, *exc) -> None:
        held = _thread_locks()
        key = os.path.realpath(self.folder)
        entry = held[key]
        entry[1] -= 1
        if entry[1] == 0:
            del held[key]
            _release_lock(entry[0])

    def _acquire(self) -> int:
        path = self.folder / LOCK_FILE
        deadline = time.monotonic() + self.wait_seconds
        while True:
            fd = self._open(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _lock_holder(fd)
                os.close(fd)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self.error(self._refusal(holder)) from None
                time.sleep(min(_LOCK_POLL_SECONDS, left))
                continue
            except OSError as e:  # a filesystem without flock
                os.close(fd)
                raise self.error(f"{self.folder}: cannot take the writer lock {path.name} "
                                 f"({e.strerror or type(e).__name__})") from None
            if _same_file(fd, path):
                _write_holder(fd)
                return fd
            os.close(fd)  # the folder was swapped in whole while we waited (a rebuild): lock the new one's file

    def _open(self, path: Path) -> int:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except PermissionError as e:  # another user's lock file: a read-only descriptor locks as well
            try:
                return os.open(path, os.O_RDONLY)
            except OSError:
                raise self.error(f"{path}: cannot open the writer lock ({e.strerror})") from None
        except OSError as e:
            raise self.error(f"{path}: cannot open the writer lock ({e.strerror})") from None

    def _refusal(self, holder: int | None) -> str:
        who = f"another writer (pid {holder})" if holder else "another writer"
        hint = (f"waited {self.wait_seconds:g} s; wait longer with --wait-seconds" if self.wait_seconds
                else "or wait with --wait-seconds")
        return f"{self.folder}: {who} is changing it; try again when it finishes ({hint})"


def _thread_locks() -> dict[str, list[int]]:
    if not hasattr(_held_locks, "folders"):
        _held_locks.folders = {}
    return _held_locks.folders


def _lock_holder(fd: int) -> int | None:
    """The pid the lock's holder wrote into the file (None before it has, or from a read-only holder)."""
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _write_holder(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except OSError:  # opened read-only (another user's file): the message then names no pid
        pass


def _release_lock(fd: int) -> None:
    try:
        os.ftruncate(fd, 0)  # before unlocking: the next holder's pid is the only one ever read
    except OSError:
        pass
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (mine.st_dev, mine.st_ino) == (st.st_dev, st.st_ino)


# ---- replacing a directory -----------------------------------------------------------------------


def staging_dir(target: Path) -> Path:
    """A fresh, empty sibling `<name>.new-<pid>` to write a complete replacement of `target` into."""
    target = _absolute(target)
    staging = target.with_name(f"{target.name}.new-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    return staging


def file_mode() -> int:
    """The mode a new file gets from this process's umask (0644 under the usual 022)."""
    umask = os.umask(0o022)  # reading the umask means setting it: put it straight back
    os.umask(umask)
    return 0o666 & ~umask


def publish_modes(directory: Path) -> None:
    """Give every file under `directory` the umask's mode: safetensors (ours and diffusers') writes
    0600 files, which would leave a saved model unreadable to the rest of a team."""
    mode = file_mode()
    for path in Path(directory).rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.chmod(path, mode)


def replace_dir(new: Path, target: Path) -> Path:
    """Make the complete directory `new` (a sibling of `target`) be `target`, so that at every instant
    either the old or the new complete directory can be found (see the module docstring). Its files
    get the umask's mode first (`publish_modes`)."""
    global _exchange_supported
    new, target = _absolute(new), _absolute(target)
    publish_modes(new)
    recover_dir(target)
    clean_leftovers(target, keep=new)
    fsync_dir(new)
    if not target.exists():
        os.rename(new, target)
        fsync_dir(target.parent)
        return target
    if _exchange_supported is not False and _exchange(new, target):
        _exchange_supported = True
        fsync_dir(target.parent)
        shutil.rmtree(new, ignore_errors=True)  # now holds the old directory
        return target
    _exchange_supported = False
    old = target.with_name(f"{target.name}.old-{os.getpid()}")
    if old.exists():
        shutil.rmtree(old)
    os.rename(target, old)
    os.rename(new, target)
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)
    return target


def recover_dir(target: Path) -> bool:
    """Finish a replacement interrupted between its two renames: when `target` is missing but an old
    complete copy `<name>.old-<pid>` is there, rename it back. True when something was restored."""
    target = _absolute(target)
    if target.exists() or not target.parent.is_dir():
        return False
    olds = sorted((p for p in target.parent.iterdir() if _leftover(p, target) == "old" and p.is_dir()),
                  key=lambda p: p.stat().st_mtime)
    if not olds:
        return False
    try:
        os.rename(olds[-1], target)
    except OSError:  # another process restored or replaced it meanwhile
        return False
    fsync_dir(target.parent)
    return True


def clean_leftovers(target: Path, keep: Path | None = None) -> list[Path]:
    """Delete `<name>.new-<pid>` / `<name>.old-<pid>` siblings of `target` left by processes that are
    no longer running (a live writer's are kept). Never deletes an old copy while `target` is missing."""
    target = _absolute(target)
    removed = []
    if not target.parent.is_dir():
        return removed
    for path in target.parent.iterdir():
        kind = _leftover(path, target)
        if kind is None or path == keep or (kind == "old" and not target.exists()):
            continue
        if _pid_alive(int(_LEFTOVER.match(path.name)["pid"])):
            continue
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        removed.append(path)
    return removed


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))  # "." and "dir/.." have a name to put a sibling beside


def _leftover(path: Path, target: Path) -> str | None:
    m = _LEFTOVER.match(path.name)
    return m["kind"] if m and m["name"] == target.name else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


@functools.cache
def _renameat2():
    try:
        renameat2 = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).renameat2
    except (OSError, AttributeError):  # not Linux, or a C library without it
        return None
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    renameat2.restype = ctypes.c_int
    return renameat2


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2); False where that is not available."""
    renameat2 = _renameat2()
    if renameat2 is None:
        return False
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):  # the filesystem or kernel cannot exchange
        return False
    raise OSError(err, f"cannot exchange {a} and {b}: {os.strerror(err)}")
