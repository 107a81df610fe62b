"""Reading a user's file (digits_torch.core.read_files): only a regular file is read, a link is
followed to one, what is not one is named as what it is, the size limit holds to the byte (a file
that grows while read included), and a path the system refuses is one UserError."""

from __future__ import annotations

import os
import socket
import threading

import pytest

from digits_torch import UserError
from digits_torch.core.read_files import MAX_TEXT_BYTES, check_regular, parse_json, read_bytes


def test_a_link_is_followed_to_the_regular_file_it_names(tmp_path):
    real = tmp_path / "real.json"
    real.write_bytes(b'{"a": 1}')
    link = tmp_path / "link.json"
    link.symlink_to(real)
    assert os.path.samestat(check_regular(link), real.stat())
    assert read_bytes(link) == real.read_bytes()


@pytest.fixture
def not_regular(tmp_path):
    """kind -> a path to something that is no regular file, named as the readers name it."""
    fifo, sock = tmp_path / "fifo", tmp_path / "sock"
    os.mkfifo(fifo)
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(str(sock))
    yield {"a FIFO": fifo, "a device node": "/dev/null", "a socket": sock, "a directory": tmp_path}
    listener.close()


@pytest.mark.parametrize("kind", ["a FIFO", "a device node", "a socket", "a directory"])
def test_check_regular_names_what_is_not_a_regular_file(not_regular, kind):
    path = not_regular[kind]
    with pytest.raises(UserError) as caught:
        check_regular(path, "a model file")
    assert str(caught.value) == f"{path}: is {kind}, not a model file"


@pytest.mark.parametrize("kind", ["a FIFO", "a device node"])
def test_read_bytes_names_what_is_not_a_regular_file_without_blocking(not_regular, kind):
    path = not_regular[kind]  # a FIFO with no writer: a blocking open would wait for ever
    raised = []

    def read() -> None:
        try:
            read_bytes(path, what="a config file")
        except UserError as err:
            raised.append(str(err))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=60)
    blocked = reader.is_alive()
    if blocked:  # in open: a writer lets it go on
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        reader.join()
    assert not blocked and raised == [f"{path}: is {kind}, not a config file"]


@pytest.mark.parametrize("kind", ["a socket", "a directory"])
def test_read_bytes_names_a_directory_and_a_socket_too(not_regular, kind):
    # a directory's descriptor is refused by os.fdopen and a socket's open says only "no such
    # device": each named as check_regular names it (`train --config DIR` printed a traceback)
    path = not_regular[kind]
    with pytest.raises(UserError) as caught:
        read_bytes(path, what="a config file")
    assert str(caught.value) == f"{path}: is {kind}, not a config file"


def test_an_empty_file_is_refused_only_where_it_may_not_be(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert check_regular(empty).st_size == 0
    with pytest.raises(UserError) as caught:
        check_regular(empty, "an image", empty=False)
    assert str(caught.value) == f"{empty}: empty file, not an image"
    assert read_bytes(empty) == b""


def test_the_limit_admits_its_own_size_and_refuses_a_byte_more(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b"x" * 100)
    assert read_bytes(path, limit=100) == b"x" * 100
    with pytest.raises(UserError) as caught:
        read_bytes(path, limit=99, what="a config file")
    assert str(caught.value) == f"{path}: 100 bytes, over the limit of 99 for a config file"


def test_no_limit_reads_past_the_default_one(tmp_path):
    path = tmp_path / "history.jsonl"
    with open(path, "wb") as f:
        f.truncate(MAX_TEXT_BYTES + 1)  # sparse: one byte over, no disk spent
    assert len(read_bytes(path, limit=None)) == MAX_TEXT_BYTES + 1
    with pytest.raises(UserError, match="over the limit"):
        read_bytes(path)


def test_a_file_that_grows_after_its_size_was_read_is_still_refused(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    path.write_bytes(b"x" * 100)
    fstat = os.fstat

    def before_it_grew(fd):  # the size the file had when opened: 10 bytes
        fields = list(fstat(fd))
        fields[6] = 10  # st_size
        return os.stat_result(fields)

    monkeypatch.setattr(os, "fstat", before_it_grew)
    assert read_bytes(path, limit=100) == b"x" * 100  # what is read is what counts
    with pytest.raises(UserError) as caught:
        read_bytes(path, limit=50, what="a run's file")
    assert str(caught.value) == f"{path}: over the limit of 50 bytes for a run's file"


@pytest.mark.parametrize("reader", [check_regular, read_bytes])
def test_a_path_the_system_refuses_is_one_user_error(tmp_path, reader):
    loop, absent = tmp_path / "loop", tmp_path / "absent.json"
    loop.symlink_to(loop)
    long = tmp_path / ("x" * 256)
    for path, problem in [
        (absent, "no such file or directory"),
        (loop, "a symlink loop (too many levels of symbolic links)"),
        (long, "file name too long (a name holds at most 255 bytes)"),
    ]:
        with pytest.raises(UserError) as caught:
            reader(path)
        assert str(caught.value) == f"{path}: {problem}"


def test_parse_json_passes_its_options_to_json_and_reads_bytes():
    assert parse_json(b'{"a": 1, "a": 2}', object_pairs_hook=list) == [("a", 1), ("a", 2)]
