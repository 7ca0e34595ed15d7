"""The snapshot format's byte level, re-implemented for tests that write or forge files:
the section checksum of each format version and a builder that writes checksummed sections
(layout in cpp/include/rtrec/snapshot.hpp; the C++ side is cpp/src/snapshot_io.hpp)."""

from __future__ import annotations

import struct

M64 = (1 << 64) - 1
LANES = (0x243F6A8885A308D3, 0x13198A2E03707344, 0xA4093822299F31D0, 0x082EFA98EC4E6C89)
END_MAGIC = b"RTRECEND"


def mix64(x: int) -> int:
    x ^= x >> 30
    x = (x * 0xBF58476D1CE4E5B9) & M64
    x ^= x >> 27
    x = (x * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def step(state: int, word: int) -> int:
    state = ((state ^ ((word * 0x9E3779B97F4A7C15) & M64)) * 0xFF51AFD7ED558CCD) & M64
    return state ^ (state >> 29)


def lanes_value(lanes: list[int], pending: int, length: int) -> int:
    h = mix64(pending ^ length)
    for lane in lanes:
        h = mix64(h ^ lane)
    return h


def checksum(data: bytes) -> int:
    """The section checksum of versions 2 and later: 8-byte little-endian words into four
    lanes in turn, then the unfinished word and the length."""
    lanes = list(LANES)
    whole = len(data) // 8
    for i, word in enumerate(struct.unpack_from(f"<{whole}Q", data)):
        lanes[i & 3] = step(lanes[i & 3], word)
    return lanes_value(lanes, int.from_bytes(data[whole * 8:], "little"), len(data))


def checksum_v1(data: bytes) -> int:
    """Version 1's checksum: one serial chain over the words."""
    state = LANES[0]
    whole = len(data) // 8
    for word in struct.unpack_from(f"<{whole}Q", data):
        state = step(state, word)
    return mix64(state ^ mix64(int.from_bytes(data[whole * 8:], "little") ^ len(data)))


class FileBuilder:
    """Writes a file section by section as a given format version's writer did. Version 1:
    each section ends with its checksum and the trailer checksums every byte before it;
    later versions: the trailer checksums the section checksums and the end magic."""

    def __init__(self, version: int) -> None:
        self.version = version
        self.out = bytearray()
        self._section = bytearray()
        self._sums = bytearray()

    def raw(self, data: bytes) -> FileBuilder:
        self._section += data
        return self

    def pack(self, fmt: str, *values: object) -> FileBuilder:
        return self.raw(struct.pack("<" + fmt, *values))

    def end_section(self) -> FileBuilder:
        sum_ = (checksum_v1 if self.version == 1 else checksum)(bytes(self._section))
        self.out += self._section + sum_.to_bytes(8, "little")
        self._sums += sum_.to_bytes(8, "little")
        self._section = bytearray()
        return self

    def finish(self) -> bytes:
        assert not self._section, "a section was left open"
        if self.version == 1:
            total = checksum_v1(bytes(self.out) + END_MAGIC)
        else:
            total = checksum(bytes(self._sums) + END_MAGIC)
        return bytes(self.out) + END_MAGIC + total.to_bytes(8, "little")
