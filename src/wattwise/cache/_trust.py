"""Who could have written a local cache entry: checked before any pickle is loaded.

Unpickling runs code chosen by whoever wrote the bytes, so a pickled entry is loaded only
when no one but the current user (or root) could have written it. The rules follow
OpenSSH's ``StrictModes`` (``safe_path()`` in ``misc.c``), applied to the entry's real
path (every symlink resolved):

* the entry file and every folder from it up to the cache root: owned by the current user
  or root, not writable by group or others; the entry must be a regular file, and its real
  path must stay inside the cache root (a link leading elsewhere is refused);
* the cache root's ancestors up to the user's home folder (included), or up to ``/`` when
  the cache is not under home: the same rules, with one addition: a folder with the sticky
  bit (``/tmp``, mode 1777) is accepted above the cache root, because others cannot
  rename or remove what they do not own in it, and the folder below must pass on its own;
* every folder met while resolving the path is checked, also one that only holds a link
  (a cache root that is a link to a world-writable folder is refused);
* group-writable passes only where the group's sole member is the current user (a
  user-private group under ``umask 002``; Debian's OpenSSH makes the same exception).

The entry's bytes are read from the descriptor whose owner and mode were checked
(``O_NOFOLLOW``), so the file checked is the file read.
"""

from __future__ import annotations

import dataclasses
import grp
import os
import pwd
import stat
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class PathProblem:
    """Why a path cannot be trusted: ``what`` (path, owner, bits) and ``fix`` (a command)."""

    what: str
    fix: str


def _name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def _user(uid: int) -> str:
    name = _name(uid)
    return f"uid {uid}" if name == str(uid) else f"{name} (uid {uid})"


def _group(gid: int) -> str:
    try:
        return f"{grp.getgrgid(gid).gr_name} (gid {gid})"
    except KeyError:
        return f"gid {gid}"


def _only_member(gid: int, uid: int) -> bool:
    """Whether the current user ``uid`` is the only member of group ``gid``."""
    try:
        group = grp.getgrgid(gid)
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        return False
    primary = {p.pw_name for p in pwd.getpwall() if p.pw_gid == gid}
    return (primary | set(group.gr_mem)) == {name}


def _component_problem(
    path: Path, st: os.stat_result, uid: int, *, inside: bool, is_entry: bool = False
) -> PathProblem | None:
    """The rule a path component breaks, or None. ``inside``: the cache root or below."""
    mode = stat.S_IMODE(st.st_mode)
    owner = _user(st.st_uid)
    if st.st_uid not in (uid, 0):
        if is_entry:
            fix = "Remove it with 'wattwise cache verify --fix'"
        else:
            fix = (
                f"Use a cache folder that you own (or 'chown -R {_name(uid)} {path}' if it "
                "is yours)"
            )
        return PathProblem(f"{path} is owned by {owner}, not by you ({_user(uid)}) or root", fix)
    sticky_dir = not inside and stat.S_ISDIR(st.st_mode) and bool(mode & stat.S_ISVTX)
    if sticky_dir:
        return None
    fix = f"Run 'chmod {'-R ' if inside and not is_entry else ''}go-w {path}'"
    if mode & 0o002:
        return PathProblem(f"{path} is writable by others (mode {mode:04o}, owner {owner})", fix)
    if mode & 0o020 and not _only_member(st.st_gid, uid):
        what = f"{path} is writable by group {_group(st.st_gid)} (mode {mode:04o}, owner {owner})"
        return PathProblem(what, fix)
    return None


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def folders_to_check(entry: Path, *, home: Path | None = None) -> list[Path]:
    """Every folder (real path) whose owner and mode decide who could write ``entry``.

    Top-down order. The folders met while resolving ``entry`` (each lexical prefix,
    resolved) and every ancestor of its real path, minus the ancestors of the user's home
    when the entry is under it.
    """
    real_entry = Path(os.path.realpath(entry))
    folders = set(real_entry.parents)
    for prefix in Path(os.path.abspath(entry)).parents:
        folders.add(Path(os.path.realpath(prefix)))
    if home is None:
        try:
            home = Path.home()
        except (RuntimeError, KeyError):  # no HOME and no passwd entry: walk up to /
            home = None
    if home is not None:
        real_home = Path(os.path.realpath(home))
        if _within(real_entry, real_home):
            folders = {f for f in folders if f not in real_home.parents}
    return sorted(folders, key=lambda f: (len(f.parts), str(f)))


def location_problem(
    root: Path, entry: Path, *, uid: int | None = None, home: Path | None = None
) -> PathProblem | None:
    """Why someone other than the current user or root could have written ``entry``.

    Args:
        root: The cache root folder.
        entry: The entry file (may not exist yet: only folders are checked then).
        uid: The user to check for (default: the effective uid).
        home: The user's home folder, where the upward walk stops (default: ``~``).

    Returns:
        None when only the current user or root could have written it.
    """
    uid = os.geteuid() if uid is None else uid
    real_root = Path(os.path.realpath(root))
    real_entry = Path(os.path.realpath(entry))
    if not _within(real_entry, real_root) or real_entry == real_root:
        return PathProblem(
            f"{entry} leads to {real_entry}, outside the cache folder {real_root}",
            f"Remove the link ('rm {entry}')",
        )
    for folder in folders_to_check(entry, home=home):
        try:
            st = os.lstat(folder)
        except OSError as err:
            return PathProblem(f"{folder} cannot be checked ({err.strerror})", "Check the path")
        if stat.S_ISLNK(st.st_mode):  # resolved a moment ago: it changed while checked
            return PathProblem(f"{folder} changed into a link while checked", "Try again")
        problem = _component_problem(folder, st, uid, inside=_within(folder, real_root))
        if problem is not None:
            return problem
    return None


def read_checked(
    root: Path, entry: Path, *, uid: int | None = None, home: Path | None = None
) -> tuple[bytes | None, PathProblem | None]:
    """The entry's bytes (None when absent), and why it cannot be trusted (None when it can).

    The bytes are read whatever the verdict (safe formats may be loaded from anywhere);
    the file's owner and mode are taken from the descriptor the bytes are read from.
    """
    uid = os.geteuid() if uid is None else uid
    try:
        problem = location_problem(root, entry, uid=uid, home=home)
        real = os.path.realpath(entry)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(real, flags)
    except FileNotFoundError:
        return None, None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if problem is None and not stat.S_ISREG(st.st_mode):
            problem = PathProblem(f"{real} is not a regular file", f"Remove it ('rm {real}')")
        if problem is None:
            problem = _component_problem(Path(real), st, uid, inside=True, is_entry=True)
        if not stat.S_ISREG(st.st_mode):
            return None, problem
        return handle.read(), problem
