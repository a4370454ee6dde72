"""Units shared by every layer, so that each lives in one place."""

from __future__ import annotations

SECTOR_SIZE = 512
"""Bytes in a logical sector, as partition tables and LVM count them."""

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
