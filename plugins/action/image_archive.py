# Which images a `docker save` archive holds, and a copy of it cut down to some of them, on the
# control node: a server receives only the images it runs, not every image of the archive (an
# app host of a multi-host inventory then gets the app's image, not PostgreSQL's and nginx's).
#
#   - name: Cut the images this host lacks out of the archive
#     image_archive:
#       path: /srv/images/shop.tar
#       images: [shop/app:1.4, postgres:17]   # each must be a tag the archive holds
#       cut_dir: ~/.cache/deployer/image-archives   # omit it to only check the archive
#       compress: true                        # optional: ship it zstd-compressed
#     register: __archive
#   # __archive.path: what to ship (the archive itself when it holds nothing else and is not
#   # to be compressed), __archive.images: every tag the archive holds, __archive.zstd:
#   # whether the file to ship is compressed
#
# In check mode it only checks. It fails, before anything is copied, when the archive is
# missing, is not a `docker save` archive, or lacks one of the images; the message lists what
# the archive holds. A compressed archive (docker load reads gzip, bzip2, xz and zstd) is
# neither checked nor cut: reading its list of images would mean decompressing all of it, so
# it is shipped whole, as before.
#
# A cut copy holds the manifest.json entries of the chosen images and the files they name
# (configs, layers, and the targets of layers stored as symlinks): the format `docker load`
# reads, from the legacy layout of Docker < 25 and from the OCI layout of later ones alike. It
# is kept in cut_dir, named after the archive, the archive's size, mtime and inode, and the
# chosen images, so the next run and the other hosts reuse it. Writing one deletes the copies
# cut from an earlier version of the same archive, and those no run used for a week. A lock
# serializes hosts that cut the same copy at once.
#
# With compress, the copy to ship is compressed with zstd (level 3, on all cores; about a
# third of the bytes for the stack's images: 590 MB become 191 MB in 5 CPU seconds on two
# cores here, 3.5 on one),
# whether cut or whole, and kept in cut_dir the same way: the bytes that cross the network,
# that the connection handles and that the server writes and reads again are cut to a third
# (`docker load` decompresses it: Debian 13's Docker 26.1 reads zstd, Debian 12's 20.10 does
# not, both checked here).
# The cut and the compression run at the lowest CPU priority (nice 19, in a thread of their own
# on Linux): where the control node is also the server, or shares its cores with one (as the
# tests here do), they yield to apt installing the packages at the same time.
# It needs the `zstandard` Python package on the control node (requirements.txt); without
# it the copy is shipped uncompressed, with a warning.
from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import pathlib
import posixpath
import sys
import tarfile
import tempfile
import threading
import time

from ansible.plugins.action import ActionBase

try:
    import zstandard
except ImportError:  # the copy then travels uncompressed, with a warning
    zstandard = None

COMPRESSED_MAGIC = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
COPY_BUFFER = 1 << 20
# Cut copies no run used for this long are deleted when another is written.
STALE_DAYS = 7
ZSTD_LEVEL = 3
# The names of the copies in cut_dir end in one of these.
SUFFIXES = (".tar.zst", ".tar")


class ArchiveError(Exception):
    pass


def normalize(reference: str) -> str:
    """An image reference as `docker save` writes it in RepoTags: the Docker Hub's registry and
    library/ left out, :latest when no tag is given."""
    name = reference
    for prefix in ("docker.io/", "index.docker.io/", "registry-1.docker.io/"):
        if name.startswith(prefix):
            name = name[len(prefix):]
            if name.startswith("library/") and name.count("/") == 1:
                name = name[len("library/"):]
            break
    if "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
        name += ":latest"
    return name


def is_compressed(path: str) -> bool:
    with open(path, "rb") as archive:
        head = archive.read(6)
    return any(head.startswith(magic) for magic in COMPRESSED_MAGIC)


def read_manifest(archive: tarfile.TarFile, path: str) -> list:
    try:
        member = archive.getmember("manifest.json")
    except KeyError:
        raise ArchiveError(f"Image archive '{path}' has no manifest.json: it is not an archive that"
                           " `docker save` wrote.") from None
    entries = json.load(archive.extractfile(member))
    if not isinstance(entries, list) or not all(isinstance(e, dict) and "Config" in e for e in entries):
        raise ArchiveError(f"Image archive '{path}' has a manifest.json that `docker load` cannot read.")
    return entries


def tags_of(entries: list) -> list:
    return [tag for entry in entries for tag in entry.get("RepoTags") or []]


def select(entries: list, images: list, path: str) -> list:
    """The manifest entries of the images, each named by a tag or by its image id (sha256:...)."""
    chosen, missing = [], []
    for image in images:
        wanted = normalize(image)
        for entry in entries:
            image_id = "sha256:" + posixpath.basename(entry["Config"]).removesuffix(".json")
            if wanted in (entry.get("RepoTags") or []) or image in (image_id, image_id[len("sha256:"):]):
                if entry not in chosen:
                    chosen.append(entry)
                break
        else:
            missing.append(image)
    if missing:
        held = ", ".join(sorted(tags_of(entries))) or "no tagged image"
        digest_hint = (" An image named by digest cannot be found in an archive (`docker save` keeps"
                       " tags, not digests): name it by tag." if any("@" in m for m in missing) else "")
        raise ArchiveError(f"Image archive '{path}' does not hold {', '.join(sorted(missing))}. It holds: "
                           f"{held}. Point the role variable ending in _image_archive at an archive that"
                           f" holds {'them' if len(missing) > 1 else 'it'} (docker save IMAGE... -o FILE),"
                           f" or fix the image name.{digest_hint}")
    return [entry for entry in entries if entry in chosen]  # in the archive's order


def zstd_writer(raw):
    """A zstd stream over the file raw, compressing on every core."""
    return zstandard.ZstdCompressor(level=ZSTD_LEVEL, threads=-1).stream_writer(raw, closefd=False)


def cut(archive: tarfile.TarFile, entries: list, dest: pathlib.Path, compress: bool = False) -> None:
    """Write to dest an archive of the entries' images: their manifest.json entries and files,
    zstd-compressed with compress."""
    members = {member.name.rstrip("/"): member for member in archive.getmembers()}
    needed: set = set()

    def need(name):
        name = posixpath.normpath(name)
        if name in needed:
            return
        member = members.get(name)
        if member is None:
            raise ArchiveError(f"manifest.json names '{name}', which the archive does not hold")
        needed.add(name)
        parent = posixpath.dirname(name)
        while parent and parent not in needed:
            if parent in members:
                needed.add(parent)
            parent = posixpath.dirname(parent)
        if member.issym():
            need(posixpath.join(posixpath.dirname(name), member.linkname))

    for entry in entries:
        need(entry["Config"])
        for layer in entry.get("Layers") or []:
            need(layer)
    manifest = json.dumps(entries, separators=(",", ":")).encode()
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as raw:
            stream = zstd_writer(raw) if compress else raw
            # A stream ("w|"): a zstd stream cannot seek.
            with tarfile.open(fileobj=stream, mode="w|" if compress else "w", format=tarfile.PAX_FORMAT,
                              copybufsize=COPY_BUFFER) as out:
                for name, member in members.items():
                    if name in needed:
                        out.addfile(member, archive.extractfile(member) if member.isfile() else None)
                info = tarfile.TarInfo("manifest.json")
                info.size, info.mode = len(manifest), 0o644
                out.addfile(info, io.BytesIO(manifest))
            if compress:
                stream.close()
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise


def compress_whole(path: str, dest: pathlib.Path) -> None:
    """Write to dest the archive at path, zstd-compressed."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", dir=dest.parent)
    try:
        with open(path, "rb") as source, os.fdopen(fd, "wb") as raw:
            with zstd_writer(raw) as stream:
                while chunk := source.read(COPY_BUFFER):
                    stream.write(chunk)
        os.replace(tmp, dest)
    except BaseException:
        os.unlink(tmp)
        raise


def name_parts(name: str) -> tuple | None:
    """(source, version, images) of a copy's file name in cut_dir; None for other files."""
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            parts = name.removesuffix(suffix).rsplit(".", 2)
            return tuple(parts) if len(parts) == 3 else None
    return None


def cut_path(path: str, entries: list, cut_dir: pathlib.Path, compress: bool = False) -> pathlib.Path:
    source = os.stat(path)
    real = os.path.realpath(path)
    stem = pathlib.Path(real).name.removesuffix(".tar")
    where = hashlib.sha256(real.encode()).hexdigest()[:8]
    version = hashlib.sha256(f"{source.st_size} {source.st_mtime_ns} {source.st_ino}".encode()).hexdigest()[:8]
    images = hashlib.sha256(" ".join(sorted(e["Config"] for e in entries)).encode()).hexdigest()[:8]
    return cut_dir / f"{stem}-{where}.{version}.{images}{SUFFIXES[0] if compress else SUFFIXES[1]}"


def at_lowest_priority(work, *args):
    """work(*args) in a thread at the lowest CPU priority (nice 19): the cut and its compression
    then take only the CPU the control node's other work leaves, such as apt installing the
    packages on the same machine when a server deploys itself. On Linux a nice value is a
    thread's own and the threads it starts inherit it (zstd's workers); elsewhere it would be the
    whole process's, so there the work runs as it is."""
    if not sys.platform.startswith("linux"):
        return work(*args)
    outcome = {}

    def run():
        try:
            os.nice(19)
        except OSError:
            pass
        try:
            outcome["value"] = work(*args)
        except BaseException as error:  # re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="image-archive-cut")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def cut_once(path: str, archive: tarfile.TarFile, entries: list, cut_dir: pathlib.Path,
             compress: bool = False, whole: bool = False) -> tuple:
    """The copy's path (cut down to the entries' images, or the whole archive with whole), and
    whether this call wrote it. Writing one deletes the copies made from other versions of the
    same archive, and those no run used for STALE_DAYS (archives named per release leave
    theirs behind)."""
    cut_dir.mkdir(parents=True, exist_ok=True)
    dest = cut_path(path, entries, cut_dir, compress)
    with open(cut_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if dest.exists():
            os.utime(dest)  # used: not stale
            return dest, False
        if whole:
            at_lowest_priority(compress_whole, path, dest)
        else:
            at_lowest_priority(cut, archive, entries, dest, compress)
        source, version, _ = name_parts(dest.name)
        stale = time.time() - STALE_DAYS * 86400
        for old in cut_dir.iterdir():
            parts = name_parts(old.name)
            if parts and (parts[0] == source and parts[1] != version or old.stat().st_mtime < stale):
                old.unlink(missing_ok=True)
        return dest, True


def inspect(path: str, images: list, cut_dir: str | None, compress: bool = False) -> dict:
    """What image_archive returns for these arguments (raises ArchiveError)."""
    if not os.path.isfile(path):
        raise ArchiveError(f"Image archive '{path}' does not exist on the control node (the role"
                           " variable ending in _image_archive).")
    if is_compressed(path):
        return {"path": path, "images": None, "cut": False, "compressed": True, "zstd": False}
    warnings = []
    if compress and zstandard is None:
        compress = False
        warnings.append("The Python package zstandard is not installed on the control node (pip install -r"
                        " requirements.txt): the image archive travels uncompressed, about 3 times the bytes.")
    try:
        with tarfile.open(path, "r:") as archive:
            entries = read_manifest(archive, path)
            chosen = select(entries, images, path)
            result = {"path": path, "images": sorted(tags_of(entries)), "cut": False, "compressed": False,
                      "zstd": False, **({"warnings": warnings} if warnings else {})}
            # No image named means all of them.
            whole = not chosen or len(chosen) == len(entries)
            if cut_dir is None or whole and not compress:
                return result
            dest, written = cut_once(path, archive, chosen or entries, pathlib.Path(os.path.expanduser(cut_dir)),
                                     compress, whole)
            return dict(result, path=str(dest), cut=not whole, zstd=compress, written=written)
    except tarfile.TarError as error:
        raise ArchiveError(f"Image archive '{path}' cannot be read as a tar archive: {error}") from None


class ActionModule(ActionBase):
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        unknown = set(args) - {"path", "images", "cut_dir", "compress"}
        images = args.get("images")
        if unknown or not isinstance(args.get("path"), str) or not isinstance(images, list) or not all(
                isinstance(image, str) and image for image in images) or not isinstance(
                    args.get("compress", False), bool):
            return dict(result, failed=True, msg="image_archive takes path (a string), images (a list of image"
                        " names) and optionally cut_dir and compress (a boolean)"
                        + (f" (unknown arguments: {sorted(unknown)})" if unknown else ""))
        try:
            # Check mode changes nothing, on the control node either: the archive is checked, not cut.
            found = inspect(args["path"], images, None if self._task.check_mode else args.get("cut_dir") or None,
                            args.get("compress", False))
        except (ArchiveError, OSError, ValueError) as error:
            return dict(result, failed=True, msg=str(error))
        return dict(result, changed=False, **found)
