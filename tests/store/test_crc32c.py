"""The event files' checksum: CRC-32C by numpy gives TensorBoard's own, byte for byte, at every
length around its chunks, and a record is the bytes TensorBoard's RecordWriter writes."""

from __future__ import annotations

import io
import random

import pytest
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import crc32c as tensorboard_crc32c
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tensorboard_masked
from tensorboard.summary.writer.record_writer import RecordWriter

from digits_torch.store.crc32c import CHUNK, crc32c, masked_crc32c
from digits_torch.store.events import record

LENGTHS = [0, 1, 3, 4, 5, 8, 40, 63, 64, 65, CHUNK - 1, CHUNK, CHUNK + 1, CHUNK + 3, CHUNK + 4]
LENGTHS += [CHUNK + 63, CHUNK + 64, 2 * CHUNK, 3 * CHUNK + 2, 10_706]


def test_the_check_value_of_crc32c():
    assert crc32c(b"123456789") == 0xE3069283  # the standard's check value (RFC 3720, B.4)


@pytest.mark.parametrize("length", LENGTHS)
def test_crc32c_is_tensorboards_at_every_length(length):
    data = random.Random(length).randbytes(length)
    assert crc32c(data) == tensorboard_crc32c(data)
    assert masked_crc32c(data) == tensorboard_masked(data)


def test_all_zero_and_all_ones_messages_too():
    for data in (bytes(3 * CHUNK + 7), b"\xff" * (CHUNK + 9)):
        assert crc32c(data) == tensorboard_crc32c(data)


@pytest.mark.parametrize("length", [0, 40, 3000])
def test_a_record_is_the_bytes_tensorboards_writer_writes(length):
    data = random.Random(length).randbytes(length)
    written = io.BytesIO()
    RecordWriter(written).write(data)
    assert record(data) == written.getvalue()
