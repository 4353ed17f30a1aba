"""Photos as a township's back office takes them (issue #29): the rules that check and clean an
uploaded photo, plain functions over bytes, no I/O.

What a phone sends is not what is kept. The real type is sniffed from the bytes (JPEG, PNG, WebP,
HEIC; the file's name and the client's content type are not believed), the size and the pixels are
limited before a pixel is decoded (a decompression bomb is a small file that declares a huge
image), and the stored copy is re-encoded: turned upright by its EXIF orientation, at most
`max_side` pixels on its longer side, as a JPEG with no metadata at all, since EXIF carries the
GPS position of the citizen's home as readily as the pothole's. What the original said about when
and where it was taken is read once, here, and returned beside the clean copy for the service's own
database (evidence needs it); the original's SHA-256 is kept so a county department can check a
copy it holds against the record.

The refusals are shared codes (`photo.*`): every service that takes photos refuses the same way,
naming the form field at fault.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal

import pillow_heif
from PIL import Image, ImageOps

from .problems import SHARED

if TYPE_CHECKING:
    from .settings import PhotoTakingSettings

pillow_heif.register_heif_opener()  # HEIC (iPhones' default since iOS 11) opens through Pillow

TOO_LARGE = SHARED["photo.too_large"]
NOT_A_PHOTO = SHARED["photo.not_a_photo"]
DAMAGED = SHARED["photo.damaged"]
TOO_MANY_PIXELS = SHARED["photo.too_many_pixels"]

PhotoType = Literal["jpeg", "png", "webp", "heic"]
STORED_TYPE = "image/jpeg"  # every stored copy and thumbnail: one format every browser shows
# HEIF brands of HEVC-coded still images (ISO/IEC 23008-12); `mif1`/`msf1` alone may be AVIF.
_HEIC_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx")
_PILLOW_FORMAT: dict[PhotoType, str] = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "heic": "HEIF"}
# EXIF tags (CIPA DC-008): the sub-IFDs, and in them the capture time and the GPS position.
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATETIME_ORIGINAL, _OFFSET_TIME_ORIGINAL = 0x9003, 0x9011
_GPS_LAT_REF, _GPS_LAT, _GPS_LON_REF, _GPS_LON = 1, 2, 3, 4


@dataclass(frozen=True)
class PhotoLimits:
    """What a service accepts and keeps: its settings (`TOWNFLOW_PHOTO_*`), defaults in settings.py."""

    max_bytes: int
    max_pixels: int
    max_side: int
    thumbnail_side: int
    quality: int
    max_stored_bytes: int = 600_000

    @classmethod
    def of(cls, settings: PhotoTakingSettings) -> PhotoLimits:
        return cls(max_bytes=settings.photo_max_bytes, max_pixels=settings.photo_max_pixels,
                   max_side=settings.photo_max_side, thumbnail_side=settings.photo_thumbnail_side,
                   quality=settings.photo_quality, max_stored_bytes=settings.photo_max_stored_bytes)


@dataclass(frozen=True)
class CleanPhoto:
    """A photo as it is stored, and what its original said (kept in the service's database only)."""

    stored: bytes  # JPEG, upright, at most max_side, no metadata
    thumbnail: bytes  # JPEG, at most thumbnail_side
    width: int
    height: int
    original_type: PhotoType
    original_bytes: int
    original_sha256: str
    captured_at: str | None  # EXIF DateTimeOriginal as the camera wrote it (its offset when given)
    position: tuple[float, float] | None  # (latitude, longitude) from the original's GPS, WGS-84 degrees

    @property
    def content_type(self) -> str:
        return STORED_TYPE


def sniff(data: bytes) -> PhotoType | None:
    """The photo type the bytes are, by their magic numbers; None for anything else."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpeg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[4:8] == b"ftyp" and (data[8:12] in _HEIC_BRANDS or (
            data[8:12] in (b"mif1", b"msf1") and any(b in data[16:64] for b in _HEIC_BRANDS))):
        return "heic"
    return None


def clean_photo(data: bytes, limits: PhotoLimits, field: str = "photos") -> CleanPhoto:
    """The photo cleaned for storage, or a `photo.*` refusal naming `field`. CPU-bound (a 12 MP
    JPEG takes a few hundred milliseconds): call it in a worker thread."""
    if len(data) > limits.max_bytes:
        raise TOO_LARGE(field, limit=limits.max_bytes)
    kind = sniff(data)
    if kind is None:
        raise NOT_A_PHOTO(field)
    try:
        with warnings.catch_warnings():
            # Pillow only warns between MAX_IMAGE_PIXELS and twice that; our own limit decides below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[_PILLOW_FORMAT[kind]])
    except Image.DecompressionBombError:
        raise TOO_MANY_PIXELS(field, limit=limits.max_pixels) from None
    except (OSError, SyntaxError, ValueError):
        raise DAMAGED(field) from None
    with image:
        # The header's size, before any pixel is decoded: a bomb is refused here, cheaply.
        if image.width * image.height > limits.max_pixels:
            raise TOO_MANY_PIXELS(field, limit=limits.max_pixels)
        captured_at, position = _capture_facts(image)
        try:
            if kind == "jpeg":
                # Decode at a power-of-two scale (JPEG's DCT gives 1/2, 1/4, 1/8 nearly free) that
                # keeps the longer side at three quarters of max_side or more: a 12 MP phone photo
                # (4032 px) decodes at 2016 px, a quarter of the pixels and of the time, and is
                # stored at that size, within max_side.
                longest = max(image.size)
                wanted = min(1.0, 0.75 * limits.max_side / longest)
                image.draft("RGB", (max(1, int(image.width * wanted)), max(1, int(image.height * wanted))))
            image.load()
            upright = ImageOps.exif_transpose(image)
        except (OSError, SyntaxError, ValueError, EOFError):  # cut short, or corrupt inside
            raise DAMAGED(field) from None
    stored_image = _rgb(upright)
    stored_image.thumbnail((limits.max_side, limits.max_side), Image.Resampling.LANCZOS)
    stored = _jpeg(stored_image, limits.quality)
    # A photo of fine detail (gravel, foliage, a crowd) encodes large at the set quality: the quality
    # is lowered in steps until the copy fits the byte budget (a 4G connection, a county's storage),
    # not below 50; a copy still over it is kept (the budget is a goal, not a refusal).
    quality = limits.quality
    while len(stored) > limits.max_stored_bytes and quality - 10 >= 50:
        quality -= 10
        stored = _jpeg(stored_image, quality)
    thumbnail_image = stored_image.copy()
    thumbnail_image.thumbnail((limits.thumbnail_side, limits.thumbnail_side), Image.Resampling.LANCZOS)
    return CleanPhoto(
        stored=stored, thumbnail=_jpeg(thumbnail_image, limits.quality), width=stored_image.width,
        height=stored_image.height, original_type=kind, original_bytes=len(data),
        original_sha256=hashlib.sha256(data).hexdigest(), captured_at=captured_at, position=position)


def _rgb(image: Image.Image) -> Image.Image:
    """JPEG has no transparency: a transparent PNG or WebP is laid on white, as a page shows it."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def _jpeg(image: Image.Image, quality: int) -> bytes:
    """A JPEG with nothing but pixels: Pillow writes EXIF, XMP or an ICC profile only when asked,
    and none is passed."""
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, optimize=True, progressive=True)
    return out.getvalue()


def _capture_facts(image: Image.Image) -> tuple[str | None, tuple[float, float] | None]:
    """When and where the original says it was taken; (None, None) where it does not say, or says
    it in a form that does not parse (a photo is not refused for its metadata)."""
    try:
        exif = image.getexif()
        detail = exif.get_ifd(_EXIF_IFD)
        gps = exif.get_ifd(_GPS_IFD)
    except Exception:  # any malformed EXIF is metadata we do without
        return None, None
    return _captured_at(detail), _position(gps)


def _captured_at(detail: dict[int, Any]) -> str | None:
    taken = detail.get(_DATETIME_ORIGINAL)
    if not isinstance(taken, str) or len(taken) < 19:
        return None
    date, _, time = taken[:19].partition(" ")
    iso = f"{date.replace(':', '-')}T{time}"
    offset = detail.get(_OFFSET_TIME_ORIGINAL)
    return iso + offset if isinstance(offset, str) and len(offset) == 6 else iso


def _position(gps: dict[int, Any]) -> tuple[float, float] | None:
    try:
        latitude = _degrees(gps[_GPS_LAT], gps.get(_GPS_LAT_REF, "N"), "S")
        longitude = _degrees(gps[_GPS_LON], gps.get(_GPS_LON_REF, "E"), "W")
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
        return None
    return latitude, longitude


def _degrees(dms: Any, ref: Any, negative: str) -> float:
    degrees, minutes, seconds = (Fraction(float(part)) for part in dms)
    value = float(degrees + minutes / 60 + seconds / 3600)
    return -value if str(ref).strip().upper() == negative else value

