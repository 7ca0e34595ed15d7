"""Which partition a user belongs to when a model's users are split over several trainers.

The rule is the core's (``cpp/include/rtrec/hash.hpp``), so every process and every language
computes the same: take the user's table key (an integer ID as its 64-bit two's complement; a
string ID hashed with FNV-1a over its UTF-8 bytes, xor its length, through the splitmix64
finaliser), pass it through the splitmix64 finaliser, and take it modulo the partition count.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import _core
from .. import _validation as check

#: The most partitions a model's users may be split over (the core's limit).
MAX_PARTITIONS: int = _core.limits["max_partitions"]


def partition_of(users: Any, partitions: int) -> np.ndarray:
    """The partition (0 .. partitions - 1) of each user ID: int IDs or str IDs, as a list or a
    1-D array; a single ID gives an array of one. ValueError for a partition count outside
    1..MAX_PARTITIONS, TypeError for IDs that are neither ints nor strs."""
    partitions = check.positive_int(partitions, "partitions", high=MAX_PARTITIONS)
    if isinstance(users, (int, np.integer, str)):
        users = [users]
    _, core_ids, _ = check.ids(users, "users")
    return _core.partition_of(core_ids, partitions)
