"""Decoding by content, every pixel mode, EXIF orientation, and a specific error per kind of bad file."""

from __future__ import annotations

import io
import struct
import zlib

import cv2
import numpy as np
import pytest
from matting import images
from matting.errors import CorruptImage, EmptyFile, ImageTooLarge, NotAnImage, TruncatedImage
from PIL import Image


def _gradient(w=64, h=48):
    x = np.linspace(0, 255, w, dtype=np.uint8)[None, :].repeat(h, 0)
    y = np.linspace(0, 255, h, dtype=np.uint8)[:, None].repeat(w, 1)
    return np.dstack([x, y, 255 - x])


def test_rgb_jpeg_and_png_decode(to_bytes):
    arr = _gradient()
    d = images.decode(to_bytes(Image.fromarray(arr), "PNG"))
    assert d.rgb.shape == (48, 64, 3) and d.rgb.dtype == np.uint8 and d.alpha is None
    assert np.array_equal(d.rgb, arr)
    d = images.decode(to_bytes(Image.fromarray(arr), "JPEG", quality=95))
    assert d.source_format == "JPEG" and np.abs(d.rgb.astype(int) - arr).mean() < 3


def test_decodes_by_content_not_extension(tmp_path, to_bytes):
    p = tmp_path / "photo.txt"  # a PNG with a lying name
    p.write_bytes(to_bytes(Image.fromarray(_gradient()), "PNG"))
    assert images.decode_file(p).source_format == "PNG"
    assert images.looks_like_image(p)
    q = tmp_path / "notes.jpg"  # text with an image name
    q.write_text("hello")
    with pytest.raises(NotAnImage, match="not an image"):
        images.decode_file(q)


@pytest.mark.parametrize(
    "mode,has_alpha",
    [("L", False), ("LA", True), ("RGBA", True), ("CMYK", False), ("P", False), ("1", False), ("I", False)],
)
def test_modes_become_rgb(mode, has_alpha, to_bytes):
    base = Image.fromarray(_gradient())
    if mode == "LA":
        img = Image.merge("LA", [base.convert("L"), Image.new("L", base.size, 100)])
    elif mode == "RGBA":
        img = base.convert("RGBA")
        img.putalpha(Image.linear_gradient("L").resize(base.size))
    else:
        img = base.convert(mode)
    fmt = "JPEG" if mode == "CMYK" else ("TIFF" if mode == "I" else "PNG")
    d = images.decode(to_bytes(img, fmt))
    assert d.rgb.shape == (48, 64, 3) and d.rgb.dtype == np.uint8
    assert (d.alpha is not None) == has_alpha
    assert d.source_mode == img.mode


def test_palette_with_transparency_keeps_alpha(to_bytes):
    img = Image.new("P", (10, 10), 0)
    img.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    img.paste(1, (0, 0, 5, 10))
    img.info["transparency"] = 1
    d = images.decode(to_bytes(img, "PNG", transparency=1))
    assert d.alpha is not None and d.alpha[:, :5].max() == 0 and d.alpha[:, 5:].min() == 255


def test_sixteen_bit_gray_and_rgb(tmp_path):
    gray16 = (np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16)
    p = tmp_path / "g16.png"
    cv2.imwrite(str(p), gray16)
    d = images.decode_file(p)
    assert d.rgb.shape == (48, 64, 3)
    assert abs(int(d.rgb[-1, -1, 0]) - 255) <= 1 and d.rgb[0, 0, 0] == 0
    rgb16 = (np.dstack([gray16, gray16 // 2, 65535 - gray16])).astype(np.uint16)
    p2 = tmp_path / "c16.png"
    cv2.imwrite(str(p2), rgb16[:, :, ::-1])
    d2 = images.decode_file(p2)
    assert d2.rgb.shape == (48, 64, 3)
    assert abs(int(d2.rgb[-1, -1, 0]) - 255) <= 1 and abs(int(d2.rgb[-1, -1, 2])) <= 1


def test_exif_orientation_is_applied(to_bytes):
    arr = np.zeros((40, 80, 3), np.uint8)
    arr[:, :40] = (255, 0, 0)  # left half red, right half blue as stored
    arr[:, 40:] = (0, 0, 255)
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW to display
    d = images.decode(to_bytes(img, "JPEG", exif=exif.tobytes(), quality=95))
    assert d.rgb.shape == (80, 40, 3)  # upright: portrait
    assert d.rgb[5, 20, 0] > 200 and d.rgb[75, 20, 2] > 200  # stored-left is now on top


def test_heic_decodes(to_bytes):
    assert images.HEIF_SUPPORTED, "pillow-heif is in requirements-runtime.txt: reinstall the venv (make venv)"
    data = to_bytes(Image.fromarray(_gradient(128, 96)), "HEIF", quality=90)
    assert images.sniff(data) == "HEIF"
    d = images.decode(data)
    assert d.rgb.shape == (96, 128, 3) and d.source_format in ("HEIF", "HEIC")


def test_webp_with_alpha(to_bytes):
    img = Image.fromarray(_gradient()).convert("RGBA")
    img.putalpha(128)
    d = images.decode(to_bytes(img, "WEBP", lossless=True))
    assert d.alpha is not None and int(d.alpha.mean()) == 128


def test_empty_file():
    with pytest.raises(EmptyFile, match="empty"):
        images.decode(b"", name="x.jpg")


def test_not_an_image():
    with pytest.raises(NotAnImage, match="x.jpg: not an image"):
        images.decode(b"%PDF-1.4 this is a pdf", name="x.jpg")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated(fmt, astronaut_rgb, to_bytes):
    data = to_bytes(Image.fromarray(astronaut_rgb), fmt)
    with pytest.raises(TruncatedImage, match="truncated"):
        images.decode(data[: len(data) // 2], name="half")


def test_garbage_after_magic_is_corrupt():
    with pytest.raises((CorruptImage, TruncatedImage)):
        images.decode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, name="bad.png")


def test_pixel_limit(to_bytes):
    data = to_bytes(Image.new("RGB", (2000, 1000)), "PNG")
    with pytest.raises(ImageTooLarge, match="2000x1000"):
        images.decode(data, max_pixels=1_000_000)
    assert images.decode(data, max_pixels=2_000_000).width == 2000


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 10))
        + chunk(b"IEND", b"")
    )


def test_decompression_bomb_header_refused_before_decoding():
    # a 100000 x 100000 PNG header with almost no data: refused on the header, never allocated
    with pytest.raises(ImageTooLarge):
        images.decode(_png_header_only(100000, 100000), name="bomb.png")


@pytest.mark.parametrize("width,height", [(10000, 9500), (20000, 10000)])  # 95 MP, 200 MP
def test_a_raised_pixel_limit_above_pillows_own_takes_effect(width, height):
    """Pillow warns at 89.5 MP and refuses at 179 MP; our limit, when raised, is the one that counts."""
    data = _png_header_only(width, height)
    mp = width * height / 1e6
    with pytest.raises(ImageTooLarge, match=f"exceeds the limit of {mp - 1:.1f} MP"):
        images.decode(data, name="big.png", max_pixels=int((mp - 1) * 1e6))
    # above our (raised) limit check, it is decoded: this one then fails on its missing data, not its size
    with pytest.raises(TruncatedImage):
        images.decode(data, name="big.png", max_pixels=int((mp + 1) * 1e6))


def test_max_pixels_env(monkeypatch, to_bytes):
    monkeypatch.setenv("AIRFLOW__MATTING__MAX_PIXELS", "1000")
    with pytest.raises(ImageTooLarge, match=r"\[matting\] max_pixels"):
        images.decode(to_bytes(Image.new("RGB", (100, 100)), "PNG"))


def test_sniff():
    assert images.sniff(b"\xff\xd8\xff\xe0") == "JPEG"
    assert images.sniff(b"RIFF\x00\x00\x00\x00WEBPVP8 ") == "WEBP"
    assert images.sniff(b"\x00\x00\x00\x18ftypheic") == "HEIF"
    assert images.sniff(b"hello world") is None


@pytest.mark.parametrize("encoder", ["fpng", "pillow"])
def test_png_encoders_roundtrip_with_dpi(encoder):
    arr = np.dstack([_gradient(), np.full((48, 64), 200, np.uint8)])
    data = images.encode(Image.fromarray(arr, "RGBA"), "png", png_encoder=encoder, dpi=(300, 300))
    back = Image.open(io.BytesIO(data))
    assert back.mode == "RGBA" and np.array_equal(np.asarray(back), arr)
    assert tuple(round(v) for v in back.info["dpi"]) == (300, 300)
