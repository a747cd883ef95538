"""What the transport costs a class: TLS vs plaintext TCP, binary vs text rows.

Starts two embedded servers on 127.0.0.1 in temporary directories, one as ``db start --listen``
does (TLS, self-signed certificate) and one with ``--insecure-plaintext``, stores one blob the
size of a model's weights in each, and times on each server:

* ``connect``: a new connection with SCRAM authentication (what a worker's pool pays per
  connection, and a student's `status` per call);
* ``fetch``: reading the blob in binary format (what a worker pays per new version; ganfriends
  reads every row in binary format);
* ``fetch text``: the same in text format (hex: twice the bytes on the wire), as before;
* ``upload``: writing the blob (what a worker pays per result).

    python benchmarks/transport.py [--megabytes 14.6] [--repeats 20]

14.6 MB is the 64x64 CelebA DCGAN's float32 weights. On a real network the link, not the
encryption, is the bound: 127.0.0.1 shows the CPU cost alone, the worst case for TLS.
Prints a table; not a test.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import psycopg

from ganfriends.db import EmbeddedPostgres
from ganfriends.db._pgctl import free_port


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=14.6, help="blob size (default 14.6)")
    parser.add_argument("--repeats", type=int, default=20, help="timed repeats (default 20)")
    return parser.parse_args(argv)


def timed(action: Callable[[], object], repeats: int) -> float:
    """Median seconds of ``action`` over ``repeats`` calls, after one warm-up call."""
    action()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def measure(url: str, blob: bytes, repeats: int) -> dict[str, float]:
    """Median connect, fetch (binary and text rows) and upload seconds against ``url``."""
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS blob (id int PRIMARY KEY, data bytea)")
        conn.execute(
            "INSERT INTO blob VALUES (1, %b) ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            (blob,),
        )
        conn.commit()

        def fetch(binary: bool = True) -> None:
            with conn.cursor(binary=binary) as cur:
                row = cur.execute("SELECT data FROM blob WHERE id = 1").fetchone()
                assert row is not None and len(row[0]) == len(blob)

        def upload() -> None:
            conn.execute("UPDATE blob SET data = %b WHERE id = 1", (blob,))
            conn.commit()

        return {
            "connect": timed(lambda: psycopg.connect(url).close(), repeats),
            "fetch": timed(fetch, repeats),
            "fetch text": timed(lambda: fetch(binary=False), repeats),
            "upload": timed(upload, repeats),
        }


def main(argv: Sequence[str] | None = None) -> None:
    """Measure both servers and print one markdown table."""
    args = parse_args(argv)
    blob = bytes(range(256)) * int(args.megabytes * 1e6 / 256)
    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ganfriends-tls-bench-") as root:
        for label, plaintext in (("TLS (default)", False), ("plaintext", True)):
            server = EmbeddedPostgres(
                Path(root) / label.split()[0],
                listen="127.0.0.1",
                port=free_port(),
                durable=False,
                plaintext=plaintext,
            )
            try:
                info = server.start()
                results[label] = measure(info.url(), blob, args.repeats)
            finally:
                server.stop()
    megabytes = len(blob) / 1e6
    print(f"### Transport on 127.0.0.1, {megabytes:.1f} MB blob, median of {args.repeats}\n")
    print(
        "| transport | connect ms | fetch ms (binary) | MB/s | fetch ms (text) | MB/s "
        "| upload ms | MB/s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for label, r in results.items():
        print(
            f"| {label} | {r['connect'] * 1e3:.1f} | {r['fetch'] * 1e3:.1f} | "
            f"{megabytes / r['fetch']:.0f} | {r['fetch text'] * 1e3:.1f} | "
            f"{megabytes / r['fetch text']:.0f} | {r['upload'] * 1e3:.1f} | "
            f"{megabytes / r['upload']:.0f} |"
        )


if __name__ == "__main__":
    main()
