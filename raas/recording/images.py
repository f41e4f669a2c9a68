"""Camera frame compression in the recorder process (Pillow): JPEG by default, PNG lossless."""

from __future__ import annotations

import io

from PIL import Image


def compress_rgb(raw: bytes, width: int, height: int, fmt: str, jpeg_quality: int) -> bytes:
    """(H, W, 3) uint8 RGB bytes -> JPEG or PNG bytes."""
    img = Image.frombuffer("RGB", (width, height), raw, "raw", "RGB", 0, 1)
    out = io.BytesIO()
    if fmt == "png":
        img.save(out, format="PNG", compress_level=1)
    else:
        img.save(out, format="JPEG", quality=jpeg_quality)
    return out.getvalue()
