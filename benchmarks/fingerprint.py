"""How long a folder/CelebA fingerprint takes now that it hashes every file's bytes.

CelebA cannot be downloaded here, so this generates a scaled sample of CelebA-like JPEGs (178x218,
smooth faces-like content plus noise, about 7-10 KB each like img_align_celeba's 202,599 files in
1.4 GB), as a folder and as a deflated zip, and times ``open_celeba(...).fingerprint()``:

- cold: an empty digest cache, so every file is read and hashed. With ``--evict`` (the default)
  the sample's pages are first dropped from the OS page cache (posix_fadvise DONTNEED on each
  file), so the reads come from the disk as on a first run;
- warm: a second open with the digest cache of the first: only stat (folder) or the zip's
  directory, no file is read;
- names+sizes only: what the fingerprint cost before it covered contents, for comparison.

    python benchmarks/fingerprint.py [--files 10000] [--workdir /tmp/gf-fingerprint]
        [--threads 1 4] [--no-evict]

Prints a markdown table with the extrapolation to CelebA's 202,599 files. It is not a test.
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image

from ganfriends.data import digests, open_celeba

CELEBA_FILES = 202_599
CELEBA_W, CELEBA_H = 178, 218


def celeba_like_jpeg(rng: np.random.Generator) -> bytes:
    """A 178x218 JPEG of smooth blobs plus a little noise: about the size of a CelebA face."""
    coarse = rng.integers(0, 256, size=(7, 6, 3), dtype=np.uint8)
    img = Image.fromarray(coarse).resize((CELEBA_W, CELEBA_H), Image.Resampling.BICUBIC)
    pixels = np.asarray(img, dtype=np.int16) + rng.integers(-6, 7, size=(CELEBA_H, CELEBA_W, 3))
    buf = io.BytesIO()
    Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_sample(workdir: Path, n: int) -> tuple[Path, Path]:
    """``workdir/n/img_align_celeba/`` and ``workdir/n/img_align_celeba.zip`` (reused if there)."""
    base = workdir / str(n)
    folder, zip_path = base / "img_align_celeba", base / "img_align_celeba.zip"
    if zip_path.is_file():
        return folder, zip_path
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = zip_path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for i in range(n):
            data = celeba_like_jpeg(rng)
            name = f"{i + 1:06d}.jpg"
            (folder / name).write_bytes(data)
            zf.writestr(f"img_align_celeba/{name}", data)
    os.replace(tmp, zip_path)
    return folder, zip_path


def evict(paths: list[Path]) -> None:
    """Drop these files' pages from the OS page cache (only ours, nothing else on the machine)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)  # dirty pages cannot be dropped
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def timed_fingerprint(path: Path, data_dir: Path) -> float:
    start = time.perf_counter()
    with open_celeba(path, data_dir=data_dir) as ds:
        ds.fingerprint()
    return time.perf_counter() - start


def timed_names_and_sizes(path: Path) -> float:
    """The fingerprint's cost before it covered contents: listing plus names and sizes."""
    start = time.perf_counter()
    with open_celeba(path, data_dir=Path(tempfile.gettempdir())) as ds:
        ds.legacy_digests()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000, help="sample size (default 10000)")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "gf-fp")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, digests.HASH_THREADS])
    parser.add_argument("--no-evict", dest="evict", action="store_false")
    args = parser.parse_args()

    started = time.perf_counter()
    folder, zip_path = make_sample(args.workdir, args.files)
    files = sorted(folder.iterdir())
    folder_bytes = sum(f.stat().st_size for f in files)
    zip_mb = zip_path.stat().st_size / 1e6
    print(
        f"sample: {args.files:,} JPEGs, {folder_bytes / 1e6:.1f} MB "
        f"({folder_bytes / args.files / 1e3:.1f} KB each), zip {zip_mb:.1f} MB "
        f"(ready in {time.perf_counter() - started:.0f} s)\n"
    )
    print(
        "| form | threads | files | MB | cold s | warm s | names+sizes only s | cold MB/s "
        "| 202,599 files cold | 202,599 files warm | 202,599 names+sizes only |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    scale = CELEBA_FILES / args.files
    for form, path, on_disk in (("folder", folder, files), ("zip", zip_path, [zip_path])):
        for threads in args.threads:
            digests.HASH_THREADS = threads
            data_dir = Path(tempfile.mkdtemp(prefix="gf-fp-cache-"))
            try:
                if args.evict:
                    evict(on_disk)
                cold = timed_fingerprint(path, data_dir)
                warm = timed_fingerprint(path, data_dir)
                old = timed_names_and_sizes(path)
            finally:
                shutil.rmtree(data_dir)
            print(
                f"| {form} | {threads} | {args.files:,} | {folder_bytes / 1e6:.1f} | {cold:.2f} "
                f"| {warm:.2f} | {old:.2f} | {folder_bytes / 1e6 / cold:.0f} "
                f"| {cold * scale:.0f} s | {warm * scale:.1f} s | {old * scale:.1f} s |",
                flush=True,
            )


if __name__ == "__main__":
    main()
