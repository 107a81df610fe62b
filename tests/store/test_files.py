"""Atomic writes (digits_torch.store.files): a file is replaced by a rename after its data is
synced, and its directory synced after the rename; a write that fails anywhere leaves the old
file and no temp file; a temp name taken by a planted link is never written through; what is not
a regular file is refused, a link in the file's place replaced; write_new never replaces
anything; link_atomically links, or copies where it cannot; remove_stale_temps removes temp files
alone; fsync_dir is a no-op where the directory cannot be synced.

Through the commands (tests/end_to_end/): a full disk, a file-size limit, links and devices
where a run's or a user's file goes, and stale temp files cleaned by a resume."""

from __future__ import annotations

import errno
import os
import re
import socket
import stat

import pytest

from digits_torch import UserError
from digits_torch.store import files
from digits_torch.store.files import (
    check_replaceable,
    fsync_dir,
    link_atomically,
    remove_stale_temps,
    write_atomically,
    write_new,
)

OLD, NEW = b"the old file\n", b"the new one, longer than the old\n"


def _failing(code: int):
    """A stand-in for an os function that fails as the system would with ``code``."""

    def fail(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    return fail


class _HalfWriter:
    """A file whose write writes half its data, then fails as a full disk does."""

    def __init__(self, file) -> None:
        self.file = file

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.file.close()

    def write(self, data) -> None:
        self.file.write(bytes(data)[: len(data) // 2])
        self.file.flush()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def _half_then_full(path, mode="r", *args, **kwargs):  # the open() that files.py sees
    return _HalfWriter(open(path, mode, *args, **kwargs))


# ------------------------------------------------------------------------- write_atomically


def test_a_reader_of_the_old_file_keeps_it_whole_and_no_temp_is_left(tmp_path):
    path = tmp_path / "f.json"
    path.write_bytes(OLD)
    with open(path, "rb") as reader:
        write_atomically(path, memoryview(NEW))  # a new file renamed over the old name
        assert reader.read() == OLD
    assert path.read_bytes() == NEW
    assert os.listdir(tmp_path) == [path.name]


def test_the_data_is_synced_before_the_rename_and_the_directory_after(tmp_path, monkeypatch):
    path = tmp_path / "f.json"
    path.write_bytes(OLD)
    seen, fsync = [], os.fsync  # what each fsync syncs, and what the file's name holds then

    def recording(fd: int) -> None:
        seen.append((os.fstat(fd), path.read_bytes()))
        fsync(fd)

    monkeypatch.setattr(os, "fsync", recording)
    write_atomically(path, NEW)
    (data, before), (directory, after) = seen
    assert (before, after) == (OLD, NEW)
    assert stat.S_ISREG(data.st_mode) and os.path.samestat(data, path.stat())
    assert os.path.samestat(directory, tmp_path.stat())


@pytest.mark.parametrize("where", ["write", "fsync", "rename"])
def test_a_write_failing_anywhere_leaves_the_old_file_and_no_temp(tmp_path, monkeypatch, where):
    path = tmp_path / "f.json"
    path.write_bytes(OLD)
    temps, temp_name = [], files._temp_name
    monkeypatch.setattr(files, "_temp_name", lambda p: temps.append(temp_name(p)) or temps[-1])
    if where == "write":  # half the data written, then the disk is full
        monkeypatch.setattr(files, "open", _half_then_full, raising=False)
    elif where == "fsync":
        monkeypatch.setattr(os, "fsync", _failing(errno.EIO))
    else:
        monkeypatch.setattr(os, "replace", _failing(errno.EXDEV))
    with pytest.raises(UserError, match=rf"^{re.escape(str(path))}: cannot write \([^)]+\)$"):
        write_atomically(path, NEW)
    assert path.read_bytes() == OLD
    assert len(temps) == 1 and temps[0].parent == tmp_path  # a temp file was made: it is gone
    assert os.listdir(tmp_path) == [path.name]


def test_a_temp_name_taken_by_a_planted_link_is_never_written_through(tmp_path, monkeypatch):
    path, outside = tmp_path / "f.json", tmp_path / "precious"
    path.write_bytes(OLD)
    outside.write_bytes(OLD)
    monkeypatch.setattr(files.secrets, "token_hex", lambda n: "0" * 2 * n)  # a name foreseen
    (tmp_path / files._temp_name(path).name).symlink_to(outside)
    with pytest.raises(UserError, match=rf"^{re.escape(str(path))}: cannot write \(File exists\)$"):
        write_atomically(path, NEW)
    assert outside.read_bytes() == OLD and path.read_bytes() == OLD


@pytest.mark.parametrize("kind", ["a directory", "a FIFO", "a socket"])
def test_what_is_not_a_regular_file_is_refused_and_left(tmp_path, kind):
    source, path, link = tmp_path / "latest.pt", tmp_path / "f.json", tmp_path / "link"
    source.write_bytes(NEW)
    with socket.socket(socket.AF_UNIX) as sock:
        if kind == "a directory":
            path.mkdir()
        elif kind == "a FIFO":
            os.mkfifo(path)
        else:
            sock.bind(str(path))
        before = path.lstat()
        problem = "not a regular file; refusing to write over it"
        for write in (lambda: write_atomically(path, NEW), lambda: link_atomically(source, path)):
            with pytest.raises(UserError) as err:
                write()
            assert str(err.value) == f"{path}: is {kind}, {problem}"
        assert sorted(os.listdir(tmp_path)) == [path.name, source.name]
        assert (path.lstat().st_ino, path.lstat().st_mode) == (before.st_ino, before.st_mode)
        link.symlink_to(path)
        with pytest.raises(UserError) as err:  # a path the user named, followed to ``path``
            check_replaceable(path, named=link)
        assert str(err.value) == f"{link}: is {kind} (a link to {path}), {problem}"


def test_a_link_in_the_files_place_is_replaced_not_followed(tmp_path):
    directory = tmp_path / "directory"
    directory.mkdir()
    link = tmp_path / "f.json"
    link.symlink_to(directory)
    write_atomically(link, NEW)
    assert not link.is_symlink() and link.read_bytes() == NEW
    assert directory.is_dir() and not list(directory.iterdir())


# ------------------------------------------------------------------------- write_new


@pytest.mark.parametrize("hard_links", [True, False])
def test_write_new_writes_a_new_file_and_never_replaces_one(tmp_path, monkeypatch, hard_links):
    if not hard_links:  # some network and FAT file systems: created exclusively instead
        monkeypatch.setattr(os, "link", _failing(errno.EPERM))
    path, taken, outside = tmp_path / "new.png", tmp_path / "taken.png", tmp_path / "outside"
    taken.write_bytes(OLD)
    dangling = tmp_path / "dangling.png"
    dangling.symlink_to(outside)
    write_new(path, NEW)
    assert path.read_bytes() == NEW and not path.is_symlink()
    for there in (taken, dangling):
        with pytest.raises(UserError, match=f"^{re.escape(str(there))}: "):
            write_new(there, NEW)
    assert taken.read_bytes() == OLD and dangling.is_symlink() and not outside.exists()
    assert sorted(os.listdir(tmp_path)) == ["dangling.png", "new.png", "taken.png"]


@pytest.mark.parametrize("hard_links", [True, False])
def test_write_new_says_a_taken_name_is_refused(tmp_path, monkeypatch, hard_links):
    if not hard_links:  # the same words where the file is created exclusively instead
        monkeypatch.setattr(os, "link", _failing(errno.EPERM))
    (tmp_path / "taken.png").write_bytes(OLD)
    with pytest.raises(UserError) as err:
        write_new(tmp_path / "taken.png", NEW)
    assert str(err.value) == f"{tmp_path / 'taken.png'}: exists already; refusing to write over it"


# ------------------------------------------------------------------------- link_atomically


@pytest.mark.parametrize("hard_links", [True, False])
def test_link_atomically_gives_the_file_another_name_or_a_copy(tmp_path, monkeypatch, hard_links):
    if not hard_links:
        monkeypatch.setattr(os, "link", _failing(errno.EPERM))
    source, path = tmp_path / "latest.pt", tmp_path / "best.pt"
    source.write_bytes(NEW)
    path.write_bytes(OLD)
    link_atomically(source, path)
    assert path.read_bytes() == NEW and os.path.samefile(source, path) == hard_links
    assert sorted(os.listdir(tmp_path)) == ["best.pt", "latest.pt"]


# ------------------------------------------------------------------------- temps and fsync


def test_remove_stale_temps_removes_temp_files_and_links_alone(tmp_path):
    run, outside = tmp_path / "run", tmp_path / "outside"
    run.mkdir()
    outside.write_bytes(OLD)
    (run / f".best.pt.{os.getpid()}-0a1b2c3d.tmp").write_bytes(OLD[:4])  # torn
    (run / ".metrics.json.1-ffffffff.tmp").symlink_to(outside)
    kept = ["best.pt", "notes.tmp", ".hidden", "sub"]
    for name in kept[:3]:
        (run / name).write_bytes(OLD)
    (run / "sub").mkdir()
    (run / "sub" / ".f.tmp").write_bytes(OLD)  # another directory's
    remove_stale_temps(run)
    assert sorted(os.listdir(run)) == sorted(kept)
    assert (run / "sub" / ".f.tmp").exists() and outside.read_bytes() == OLD


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts descriptors in /proc")
def test_fsync_dir_syncs_the_directory_and_is_a_no_op_where_it_cannot(tmp_path, monkeypatch):
    synced, fsync = [], os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(os.fstat(fd)) or fsync(fd))
    before = _open_fds()
    fsync_dir(tmp_path)
    (directory,) = synced
    assert os.path.samestat(directory, tmp_path.stat())
    fsync_dir(tmp_path / "missing")  # cannot be opened: nothing to sync
    assert len(synced) == 1
    monkeypatch.setattr(os, "fsync", _failing(errno.EINVAL))  # a file system that cannot
    fsync_dir(tmp_path)
    assert _open_fds() == before  # each descriptor closed
