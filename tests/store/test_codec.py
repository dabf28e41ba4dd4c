"""The archive's body formats: zlib bodies (written before a dictionary) and zstd frames with one."""

from __future__ import annotations

import tracemalloc
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
import zstandard

from fetcher.errors import ArchiveUnreadable
from fetcher.store.archive import CODEC, pack
from fetcher.store.codec import (
    CONTROL_PROFILES,
    SECURE_SCORES,
    ZSTD_LEVEL,
    BaseUnreadable,
    Codec,
    Dictionary,
    MissingBase,
    Unreadable,
    compress,
    delta_compressor,
    is_delta,
    is_zstd,
    train,
)
from tests.payloads import TENANT, many_controls_day

NOW = datetime(2026, 11, 27, 6, tzinfo=UTC)


def texts(count: int = 220, tenant: str = TENANT) -> list[bytes]:
    day = NOW.date()
    return [orjson.dumps(many_controls_day(60, tenant, day - timedelta(days=n), newest=n == 0)) for n in range(count)]


@pytest.fixture(scope="module")
def dictionary() -> Dictionary:
    return train(SECURE_SCORES, texts(), NOW)


def test_a_zlib_body_written_before_any_dictionary_reads_back() -> None:
    text = texts(1)[0]

    assert Codec().decompress(zlib.compress(text, 3)) == text


def test_a_codec_without_a_dictionary_writes_zlib() -> None:
    text = texts(1)[0]

    body = Codec().compress(SECURE_SCORES, text)

    assert body == zlib.compress(text, 3)


def test_a_zstd_body_carries_its_dictionary_and_reads_back(dictionary: Dictionary) -> None:
    text = texts(2)[1]  # an older, thin day, like most of the archive
    codec = Codec([dictionary])

    body = codec.compress(SECURE_SCORES, text)

    assert is_zstd(body)
    assert len(body) < len(zlib.compress(text, 3))
    assert Codec([dictionary]).decompress(body) == text


def test_a_kind_without_a_dictionary_stays_zlib(dictionary: Dictionary) -> None:
    codec = Codec([dictionary])

    assert not is_zstd(codec.compress(CONTROL_PROFILES, b'{"id": "x"}'))
    assert not codec.active(CONTROL_PROFILES)


def test_recompress_turns_zlib_into_zstd_and_leaves_zstd_alone(dictionary: Dictionary) -> None:
    text = texts(1)[0]
    codec = Codec([dictionary])

    new = codec.recompress(SECURE_SCORES, zlib.compress(text, 3))

    assert new is not None
    assert is_zstd(new)
    assert codec.decompress(new) == text
    assert codec.recompress(SECURE_SCORES, new) is None


def test_a_body_naming_an_unknown_dictionary_says_which(dictionary: Dictionary) -> None:
    body = Codec([dictionary]).compress(SECURE_SCORES, texts(1)[0])

    with pytest.raises(Unreadable, match=f"zstd dictionary {dictionary.dict_id}, which archive_dictionaries"):
        Codec().decompress(body)


@pytest.mark.parametrize("damage", [lambda b: b[:4] + b"\x00" * 12, lambda _: b"\x78garbage"])
def test_a_damaged_body_is_unreadable(dictionary: Dictionary, damage: object) -> None:
    body = Codec([dictionary]).compress(SECURE_SCORES, texts(1)[0])

    with pytest.raises(Unreadable):
        Codec([dictionary]).decompress(damage(body))  # type: ignore[operator]


def test_an_unreadable_archived_object_is_one_line_naming_tenant_and_day(dictionary: Dictionary) -> None:
    token = CODEC.set(Codec([dictionary]))
    try:
        raw = pack({"id": "x"}, tenant_id=TENANT, score_date=NOW.date(), fetched_at=NOW, run_id=None, warning=None)
    finally:
        CODEC.reset(token)

    with pytest.raises(ArchiveUnreadable) as caught:
        raw.payload(Codec())

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"tenant {TENANT}: the archived secureScore of {NOW.date()} ")
    assert f"zstd dictionary {dictionary.dict_id}" in message


def test_an_archived_body_that_decompresses_to_no_json_is_unreadable_not_a_traceback() -> None:
    """A damaged frame without a checksum (written before they had one) can decompress; the result is not JSON."""
    raw = pack({"id": "x"}, tenant_id=TENANT, score_date=NOW.date(), fetched_at=NOW, run_id=None, warning=None)
    damaged = raw._replace(body=zlib.compress(b'{"id": "x"'))

    with pytest.raises(ArchiveUnreadable) as caught:
        damaged.payload(Codec())

    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"tenant {TENANT}: the archived secureScore of {NOW.date()} ")
    assert "cannot be read: not JSON once decompressed (" in message


def test_a_damaged_dictionary_frame_is_unreadable_not_wrong(dictionary: Dictionary) -> None:
    """Its checksum catches damage that would otherwise decode, with the dictionary, into other bytes."""
    body = bytearray(Codec([dictionary]).compress(SECURE_SCORES, texts(1)[0]))
    body[len(body) // 2] ^= 0xFF

    with pytest.raises(Unreadable):
        Codec([dictionary]).decompress(bytes(body))


def test_pack_outside_a_run_writes_zlib() -> None:
    raw = pack({"id": "x"}, tenant_id=TENANT, score_date=NOW.date(), fetched_at=NOW, run_id=None, warning=None)

    assert zlib.decompress(raw.body) == b'{"id":"x"}'


# ------------------------------------------------------------------------------------------------ deltas


def test_a_delta_reads_back_with_its_base_whatever_the_base_is_compressed_with(dictionary: Dictionary) -> None:
    """A base is named by content: its body may be zlib or a dictionary frame, the delta reads the same."""
    base, text = texts(3)[1:]
    delta = delta_compressor(base).compress(text)
    codec = Codec([dictionary])

    assert is_delta(delta)
    assert codec.decompress(delta, zlib.compress(base, 3)) == text
    assert codec.decompress(delta, codec.compress(SECURE_SCORES, base)) == text


def test_a_dictionary_frame_or_zlib_body_is_no_delta(dictionary: Dictionary) -> None:
    text = texts(1)[0]

    assert not is_delta(Codec([dictionary]).compress(SECURE_SCORES, text))
    assert not is_delta(zlib.compress(text, 3))


def test_a_delta_without_its_base_says_so() -> None:
    base, text = texts(2)

    with pytest.raises(MissingBase, match="a delta whose base was not found"):
        Codec().decompress(delta_compressor(base).compress(text))


def test_a_delta_whose_base_is_a_delta_is_refused() -> None:
    """No chain is longer than one: a base that is itself a delta is a damaged archive, not a chain to follow."""
    first, second, third = texts(3)
    middle = delta_compressor(first).compress(second)

    with pytest.raises(BaseUnreadable, match=r"its base cannot be read: a zstd frame naming no dictionary \(id 0\)"):
        Codec().decompress(delta_compressor(second).compress(third), middle)


def test_a_damaged_delta_is_unreadable_not_wrong() -> None:
    """Its checksum catches damage that would otherwise decode, against its base, into other bytes."""
    base, text = texts(2)
    delta = bytearray(delta_compressor(base).compress(text))
    delta[len(delta) // 2] ^= 0xFF

    with pytest.raises(Unreadable):
        Codec().decompress(bytes(delta), zlib.compress(base, 3))


def test_a_frame_naming_no_dictionary_in_a_row_naming_no_base_is_a_plain_zstd_frame() -> None:
    """Written by another tool with plain zstd, streamed (no content size in its header) or not."""
    text = texts(1)[0]
    streamed = zstandard.ZstdCompressor().compressobj()

    assert Codec().decompress(zstandard.ZstdCompressor().compress(text), delta=False) == text
    assert Codec().decompress(streamed.compress(text) + streamed.flush(), delta=False) == text


@pytest.mark.parametrize("damage", [lambda b: b[:-6], lambda b: b + b"more"], ids=["cut short", "bytes after"])
def test_a_plain_zstd_frame_cut_short_or_followed_by_other_bytes_is_unreadable(damage: Any) -> None:
    body = zstandard.ZstdCompressor().compress(texts(1)[0])

    with pytest.raises(Unreadable, match=r"^a damaged zstd frame naming no dictionary \(id 0\)"):
        Codec().decompress(damage(body), delta=False)


def held(make: Any) -> tuple[int, int]:
    """The bytes `make()`'s bodies hold in memory (tracemalloc: what was allocated for them) and their length."""
    tracemalloc.start()
    try:
        bodies = make()
        size, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return size, sum(map(len, bodies))


def test_a_zstd_body_holds_its_own_size_not_zstds_bound_for_its_json(dictionary: Dictionary) -> None:
    """python-zstandard allocates zstd's bound for the input (the JSON's size and more) and keeps it: 20 bodies
    of about 2 kB held 1.4 MB until the save that wrote them was done, dictionary frames and deltas alike."""
    objects = texts(21)
    codec, deltas = Codec([dictionary]), delta_compressor(objects[0])
    codec.compress(SECURE_SCORES, objects[0])  # the contexts' own memory, allocated once, is not counted
    deltas.compress(objects[1])

    frames, frames_length = held(lambda: [codec.compress(SECURE_SCORES, t) for t in objects[1:]])
    compressed, compressed_length = held(lambda: [compress(deltas, t) for t in objects[1:]])
    bound, _ = held(lambda: [deltas.compress(t) for t in objects[1:]])  # python-zstandard's own

    assert frames < frames_length * 1.5 + 20 * 100
    assert compressed < compressed_length * 1.5 + 20 * 100
    assert bound > sum(map(len, objects[1:]))  # the control: what the copy saves


def test_a_body_is_byte_for_byte_what_zstd_wrote_before_the_copy(dictionary: Dictionary) -> None:
    """Archives written before and after are the same bytes: dictionary frames and deltas alike."""
    objects = texts(8)
    before = zstandard.ZstdCompressor(
        level=ZSTD_LEVEL, dict_data=zstandard.ZstdCompressionDict(dictionary.data), write_checksum=True
    )
    deltas = delta_compressor(objects[0])

    assert [Codec([dictionary]).compress(SECURE_SCORES, t) for t in objects] == [before.compress(t) for t in objects]
    assert [compress(deltas, t) for t in objects] == [deltas.compress(t) for t in objects]
