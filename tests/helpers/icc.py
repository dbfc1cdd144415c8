"""ICC v2 profiles built byte by byte (Pillow can only create sRGB/LAB/XYZ profiles)."""

from __future__ import annotations

import struct

import numpy as np


def _s15(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(x: float, y: float, z: float) -> bytes:
    return b"XYZ " + bytes(4) + _s15(x) + _s15(y) + _s15(z)


def _gamma(gamma: float) -> bytes:
    return b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)


def _desc(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\0"
    return b"desc" + bytes(4) + struct.pack(">I", len(ascii_)) + ascii_ + bytes(8 + 3 + 67)


def icc_profile(space: bytes, tags: dict[bytes, bytes]) -> bytes:
    table, data = b"", b""
    start = 128 + 4 + 12 * len(tags)
    for signature, body in tags.items():
        body += bytes(-len(body) % 4)
        table += signature + struct.pack(">II", start + len(data), len(body))
        data += body
    d50 = _s15(0.9642) + _s15(1.0) + _s15(0.8249)
    header = (
        struct.pack(">I", start + len(data))
        + bytes(4)
        + bytes([2, 0x10, 0, 0])
        + b"mntr"
        + space
        + b"XYZ "
        + bytes(12)
        + b"acsp"
        + bytes(24 + 4)
        + d50
        + bytes(48)
    )
    return header + struct.pack(">I", len(tags)) + table + data


ADOBE_GAMMA = 563 / 256
ADOBE_RGB = icc_profile(
    b"RGB ",
    {
        b"desc": _desc("Adobe RGB (1998) test"),
        b"wtpt": _xyz(0.9642, 1.0, 0.8249),
        b"rXYZ": _xyz(0.6097559, 0.3111145, 0.0194702),
        b"gXYZ": _xyz(0.2052401, 0.6256714, 0.0608902),
        b"bXYZ": _xyz(0.1492240, 0.0632141, 0.7445396),
        b"rTRC": _gamma(ADOBE_GAMMA),
        b"gTRC": _gamma(ADOBE_GAMMA),
        b"bTRC": _gamma(ADOBE_GAMMA),
    },
)
LINEAR_GREY = icc_profile(
    b"GRAY",
    {b"desc": _desc("Grey gamma 1.0"), b"wtpt": _xyz(0.9642, 1.0, 0.8249), b"kTRC": _gamma(1.0)},
)


def adobe_to_srgb(rgb: tuple[int, int, int]) -> tuple[int, ...]:
    """Reference conversion through XYZ (D65) with the published matrices."""
    linear = (np.array(rgb) / 255.0) ** ADOBE_GAMMA
    to_xyz = np.array(
        [
            [0.5767309, 0.1855540, 0.1881852],
            [0.2973769, 0.6273491, 0.0752741],
            [0.0270343, 0.0706872, 0.9911085],
        ]
    )
    to_srgb = np.array(
        [
            [3.2404542, -1.5371385, -0.4985314],
            [-0.9692660, 1.8760108, 0.0415560],
            [0.0556434, -0.2040259, 1.0572252],
        ]
    )
    srgb = np.clip(to_srgb @ to_xyz @ linear, 0, 1)
    encoded = np.where(srgb <= 0.0031308, 12.92 * srgb, 1.055 * srgb ** (1 / 2.4) - 0.055)
    return tuple(round(float(v) * 255) for v in encoded)
