"""Issue #29's target: a 5 MB phone photo stored, cleaned and thumbnailed with p95 ≤ 1.5 s on this
machine. A stack of its own with a SeaweedFS; a phone-sized photo (4032 × 3024, textured, with EXIF
and GPS, about 5 MB) filed with a matter through intake's `POST /v1/filings`, one filing after
another: each answer's wall time (upload, type sniffed, limits, decoded, turned upright, shrunk,
re-encoded without metadata, thumbnail, both objects put in S3, the filing committed) and the
stored copy's size. Writes bench/results/photos-<time>.json.

    python -m bench.photos [--filings 30]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, ImageFilter

from devstack.s3 import SeaweedFS
from devstack.stack import Stack

from .scale.reads import percentile

RESULTS = Path(__file__).with_name("results")
CLERK = ("s010", ("clerk",))


def phone_photo(seed: int) -> bytes:
    """A 12 MP phone photo of about 5 MB: a textured scene (not a flat colour a JPEG shrinks to
    nothing) with the camera, the time, the GPS position and an orientation in its EXIF."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible picture, not a secret
    small = Image.frombytes("RGB", (1344, 1008), rng.randbytes(1344 * 1008 * 3))
    scene = small.filter(ImageFilter.GaussianBlur(0.8)).resize((4032, 3024))
    exif = Image.Exif()
    exif[0x0112], exif[0x010F] = 6, "BenchPhone"
    exif.get_ifd(0x8769)[0x9003] = "2026:11:09 08:15:30"
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (30.0, 49.0, 52.0), "E", (106.0, 55.0, 16.0)
    out = io.BytesIO()
    scene.save(out, "JPEG", quality=95, exif=exif)
    return out.getvalue()


def filing(n: int) -> dict[str, Any]:
    return {"channel": "window", "item_code": "S001", "description": "路面坑洼", "village": "V01",
            "location": f"青禾村{n}号", "citizen": {"name": "测试群众", "id_number": None,
                                                 "phone": f"0838-{6000000 + n}"}}


async def measure(stack: Stack, filings: int) -> dict[str, Any]:
    url = stack.services["intake"].url
    token = stack.token("intake", CLERK[0], CLERK[1])
    photos = [phone_photo(n) for n in range(3)]
    seconds: list[float] = []
    async with httpx.AsyncClient(timeout=60, headers={"Authorization": f"Bearer {token}"}) as client:
        for n in range(filings):
            data = photos[n % len(photos)]
            started = time.perf_counter()
            answer = await client.post(f"{url}/v1/filings", data={"filing": json.dumps(filing(n), ensure_ascii=False)},
                                       files=[("photos", ("IMG.jpg", data, "image/jpeg"))])
            seconds.append(time.perf_counter() - started)
            if answer.status_code != 201:
                raise RuntimeError(f"filing {n}: {answer.status_code} {answer.text}")
        status = (await client.get(f"{url}/v1/requests/{answer.json()['ticket_no']}")).raise_for_status().json()
    ms = [s * 1000 for s in seconds]
    return {"filings": filings, "photo_bytes": [len(p) for p in photos],
            "stored_bytes": status["photos"][0]["size"],
            "ms": {"p50": round(percentile(ms, 0.5), 1), "p95": round(percentile(ms, 0.95), 1),
                   "max": round(max(ms), 1)}}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.photos")
    parser.add_argument("--filings", type=int, default=30)
    args = parser.parse_args()
    s3 = SeaweedFS(Path(tempfile.mkdtemp(prefix="townflow-s3-")))
    stack = Stack.in_temp_dir().use_s3(s3.start())
    try:
        stack.start_infra().start_services(["intake"])
        result = asyncio.run(measure(stack, args.filings))
    finally:
        stack.stop()
        s3.stop()
    result["at"] = datetime.now(UTC).isoformat(timespec="seconds")
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"photos-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2), f"\nwritten to {path}", sep="")


if __name__ == "__main__":
    main()
