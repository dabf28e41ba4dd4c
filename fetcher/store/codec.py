"""The raw archive's body format, pure: compressing an object's JSON and reading it back.

Three formats live side by side in `raw_payloads.body` (the first two in `raw_control_profiles.body` too),
told apart by their first bytes and the frame's dictionary id:

- a zstd frame (magic `28 b5 2f fd`) compressed with a dictionary trained on the database's own objects
  and stored in `archive_dictionaries`; the frame carries the dictionary's id (never 0), so a body names
  what it needs to be read;
- a zlib stream (first byte `78`): every body written before the database had a dictionary for its kind;
- a delta (`raw_payloads` only, migration 0013): a zstd frame whose dictionary is the JSON of another
  object of the same tenant, its *base*, loaded as raw content (`DICT_TYPE_RAWCONTENT`), so the frame
  names no dictionary (id 0). The row names its base in `base_date` and `base_sha256` (the base's
  content, not its bytes: recompressing a base keeps its deltas readable); a base is never a delta
  itself, so reading any body takes at most two decompressions. `fetcher.store.deltas` chooses bases.

A frame naming no dictionary is a delta only when its row names a base: in a row that names none (a base,
or a body of `raw_control_profiles`) it is a plain zstd frame (written by another tool), read without one.

A database starts with no dictionary, so its first objects are written as zlib; once it holds enough of
them, `fetcher.store.compaction` trains one and recompresses those (measured on 230-control secureScores:
5.3 kB an object with zlib, 1.67 kB with zstd level 7 and a 110 kB dictionary trained on 200 to 400 objects
of other tenants, for 50 us more CPU an object).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import zstandard

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
ZLIB_LEVEL = 3  # 3x faster than 6 for a 10% larger archive (measured on 230-control days)
# Measured on 230-control secureScores (42.7 kB of JSON), CPU time of one object, the dictionary trained on
# 400 objects of five other tenants: zlib 5.3 kB in 100 us; with 110 kB, level 3: 2.2 kB in 28 us, level 6:
# 1.74 kB in 113 us, level 7: 1.67 kB in 147 us, level 9: 1.58 kB in 200 us; 64 kB: 0.1-0.2 kB larger.
# Below about 1.85 kB two archive rows share a 4 kB SQLite page: from level 7 on, most of them do.
# Level 3 all the same (issue 17): a nightly run's objects are mostly deltas, and its dictionary frames are the
# weekly bases (every object of a new tenant), where level 7 was a third of the archive's CPU. On the simulator's
# 2-day objects (Xeon 2.3 GHz): full day 5.7 kB in 94 us against 4.6 kB in 520 us, thin day 2.8 against 2.2 kB
# (levels 4 to 6: 150 to 400 us for 5.8 to 4.9 kB); what it costs a score-day: docs/benchmarks.md.
ZSTD_LEVEL = 3
# A delta's level: on the simulator's 230-control days (full 90 kB of JSON, thin 42 kB) against a base of the
# same shape 1 to 7 days older, level 3 gave full 0.95-1.5 kB, thin 0.2-0.4 kB in 240 / 160 us CPU (loading
# the base included); level 7 the same sizes within 10 % in 590 / 220 us; level 1 4.4 kB for full ones.
# A dictionary frame of the same objects took 640 / 430 us (level 7). Reading a delta: 37 us (full).
DELTA_LEVEL = 3
TRAIN_AFTER = 200  # objects of a kind in the archive before a dictionary is trained on them
# Training holds its samples' JSON twice (our list and zstd's copy) plus fastCOVER's tables: with 400 samples and
# zstd's defaults, 17 MB of samples and 28 MB more while training, which put the memory benchmark's first run
# of 1,000 tenants 25 MB higher. A 2^16-entry frequency table (f=16, k=2048, d=8) takes little; the samples
# are read from the first 200 objects and kept up to 6 MB (every third object first, so they span them all):
# held out, 1.82 kB an object on the demo database's archive (1.84 with all 200, 8.6 MB; 1.95 with the first
# 6 MB; 1.86 with 4 MB) and 3.43 kB on the memory benchmark's 2-day objects (3.40 with all 200, 13.2 MB).
MAX_SAMPLES = 200
MAX_SAMPLE_BYTES = 6_000_000

# The kinds of archived objects, each with its own dictionary.
SECURE_SCORES = "secureScores"
CONTROL_PROFILES = "controlProfiles"
# secureScores: zstd's default size; from 100 samples it did worse than 64 kB (3.4 kB against 2.3).
# Control profiles (1.1 kB of JSON, 600 B with zlib): 85 B with 32 kB, 120 B with 110 kB, 97 B with 16 kB.
DICTIONARY_SIZES = {SECURE_SCORES: 110 * 1024, CONTROL_PROFILES: 32 * 1024}
# fastCOVER's parameters (segment size, d-mer size, log2 of its frequency table) for secureScores, set rather
# than searched (see MAX_SAMPLES); control profiles, 1 kB objects, keep zstd's search.
TRAINING: dict[str, dict[str, int]] = {SECURE_SCORES: {"k": 2048, "d": 8, "f": 16}, CONTROL_PROFILES: {}}


class Unreadable(ValueError):
    """A body that cannot be decompressed: its dictionary is unknown, or the bytes are damaged."""


class MissingBase(Unreadable):
    """A delta read without its base's body (the caller names the base's day and sha256)."""

    def __init__(self) -> None:
        super().__init__("a delta whose base was not found")


class BaseUnreadable(Unreadable):
    """A delta whose base's body cannot be read (the caller names the base's day and sha256)."""


class MissingDictionary(Unreadable):
    """A zstd body compressed with a dictionary that `archive_dictionaries` does not hold."""

    def __init__(self, dict_id: int) -> None:
        super().__init__(f"compressed with zstd dictionary {dict_id}, which archive_dictionaries does not hold")
        self.dict_id = dict_id


@dataclass(frozen=True)
class Dictionary:
    """A trained zstd dictionary, as stored in `archive_dictionaries`."""

    dict_id: int
    kind: str
    created_at: datetime
    samples: int
    data: bytes
    recompressed_at: datetime | None = None  # when a pass last found no zlib body of its kind left

    @property
    def size(self) -> int:
        return len(self.data)


def train(kind: str, samples: Sequence[bytes], created_at: datetime) -> Dictionary:
    """A dictionary trained on `samples` (objects' JSON); zstd derives its id from its content.
    `zstandard.ZstdError` when they are too few or too alike to train on."""
    trained = zstandard.train_dictionary(DICTIONARY_SIZES[kind], list(samples), **TRAINING[kind])
    return Dictionary(trained.dict_id(), kind, created_at, len(samples), trained.as_bytes())


def is_zstd(body: bytes) -> bool:
    return body[:4] == ZSTD_MAGIC


def _frame_dict_id(body: bytes) -> int:
    try:
        return int(zstandard.get_frame_parameters(body).dict_id)
    except zstandard.ZstdError as error:
        raise Unreadable(f"a damaged zstd frame ({error})") from None


def is_delta(body: bytes) -> bool:
    """Whether `body` is a zstd frame naming no dictionary: a delta when its row names a base, else a plain
    frame; `Unreadable` for a damaged frame."""
    return is_zstd(body) and _frame_dict_id(body) == 0


def compress(compressor: zstandard.ZstdCompressor, text: bytes) -> bytes:
    """`compressor.compress(text)` in a bytes object of its own size. python-zstandard's `compress` allocates
    zstd's bound for `text` (its size and a little more: 66 to 90 kB for a secureScore) and only sets the
    length of what it returns, so each body held its JSON's size in malloc until freed, 15 to 90 times its own
    (50 bodies of 4 kB held 3.3 MB); the copy holds the frame alone, byte for byte the same."""
    return bytes(memoryview(compressor.compress(text)))


def raw_content(base: bytes) -> zstandard.ZstdCompressionDict:
    """A base object's JSON as the dictionary of its deltas."""
    return zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def delta_compressor(base: bytes) -> zstandard.ZstdCompressor:
    """The compressor of deltas against `base` (its JSON): made once per base, used for each of its deltas.
    With a checksum (4 bytes): a damaged delta decodes against its base into plausible bytes otherwise."""
    return zstandard.ZstdCompressor(level=DELTA_LEVEL, dict_data=raw_content(base), write_checksum=True)


@dataclass
class Codec:
    """Writes new bodies with each kind's dictionary (zlib for a kind without one) and reads both formats.

    Not thread-safe (its zstd contexts are reused): one per run, used by the event loop's thread.
    """

    dictionaries: Sequence[Dictionary] = ()
    _compressors: dict[str, zstandard.ZstdCompressor] = field(default_factory=dict, init=False, repr=False)
    _decompressors: dict[int, zstandard.ZstdDecompressor] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.dictionaries = list(self.dictionaries)
        for dictionary in self.dictionaries:
            self._prepare(dictionary)

    def _prepare(self, dictionary: Dictionary) -> None:
        prepared = zstandard.ZstdCompressionDict(dictionary.data)
        # One dictionary a kind: the first stored wins (`archive_dictionaries.kind` is unique).
        # With a checksum (4 bytes), as deltas: at level 3 a damaged frame often still decodes, into wrong bytes.
        compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL, dict_data=prepared, write_checksum=True)
        self._compressors.setdefault(dictionary.kind, compressor)
        self._decompressors[dictionary.dict_id] = zstandard.ZstdDecompressor(dict_data=prepared)

    def add(self, dictionary: Dictionary) -> None:
        """A dictionary stored during a run: the run's next bodies of its kind are written with it."""
        self.dictionaries = [*self.dictionaries, dictionary]
        self._prepare(dictionary)

    def active(self, kind: str) -> bool:
        """Whether new bodies of `kind` are written with a dictionary."""
        return kind in self._compressors

    def compress(self, kind: str, text: bytes) -> bytes:
        compressor = self._compressors.get(kind)
        return zlib.compress(text, ZLIB_LEVEL) if compressor is None else compress(compressor, text)

    def decompress(self, body: bytes, base: bytes | None = None, *, delta: bool | None = None) -> bytes:
        """The JSON of a body in any format; `base`: the body of its base when it is a delta (ignored
        otherwise); `delta`: whether its row names a base (None: a frame naming no dictionary is taken for a
        delta). `Unreadable` says why not, in a few words: `MissingBase` for a delta without `base`,
        `BaseUnreadable` when `base` cannot be read or is itself a delta."""
        if not is_zstd(body):
            try:
                return zlib.decompress(body)
            except zlib.error as error:
                raise Unreadable(f"neither a zstd frame nor a zlib stream ({error})") from None
        dict_id = _frame_dict_id(body)
        if dict_id == 0 and delta is False:
            return _plain(body)
        if dict_id == 0:
            return self._undelta(body, base)
        decompressor = self._decompressors.get(dict_id)
        if decompressor is None:
            raise MissingDictionary(dict_id)
        try:
            return decompressor.decompress(body)
        except zstandard.ZstdError as error:
            raise Unreadable(f"a damaged zstd frame (dictionary {dict_id}: {error})") from None

    def _undelta(self, body: bytes, base: bytes | None) -> bytes:
        if base is None:
            raise MissingBase
        try:
            text = self.decompress(base, delta=False)  # a base is never a delta: its row names no base
        except Unreadable as error:
            raise BaseUnreadable(f"its base cannot be read: {error}") from None
        try:
            return zstandard.ZstdDecompressor(dict_data=raw_content(text)).decompress(body)
        except zstandard.ZstdError as error:
            raise Unreadable(f"a damaged delta ({error})") from None

    def recompress(self, kind: str, body: bytes) -> bytes | None:
        """A zlib body of `kind` written again with its dictionary; None if it needs no change."""
        if is_zstd(body) or not self.active(kind):
            return None
        return self.compress(kind, self.decompress(body))


def _plain(body: bytes) -> bytes:
    """A zstd frame naming no dictionary in a row that names no base: read without one. A frame that needs one
    all the same (a delta whose row lost its base's name) fails, mostly on its checksum or its back-references
    (a delta's are into its base); said as such."""
    # A stream decoder: a frame written by a streaming tool may not carry its content size.
    decoder = zstandard.ZstdDecompressor().decompressobj()
    try:
        text = decoder.decompress(body)
    except zstandard.ZstdError as error:
        raise Unreadable(
            f"a zstd frame naming no dictionary (id 0) that does not decode without one ({error}): a delta whose "
            "row names no base, or damaged bytes"
        ) from None
    if not decoder.eof or decoder.unused_data:
        raise Unreadable("a damaged zstd frame naming no dictionary (id 0): cut short, or followed by other bytes")
    return text
