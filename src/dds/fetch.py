"""Downloads of official checkpoints: streamed to a temporary file beside the target while
its sha256 is computed, and renamed into place only when complete and verified, so that an
interrupted or wrong download never leaves a file that looks finished."""

import hashlib
import http.client
import logging
import time
import urllib.error
import urllib.request
from pathlib import Path

from dds.io import DataFileError, atomic_path

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# progress lines: one per this many bytes, and one at the end
REPORT_EVERY = 256 << 20


def download(url: str, path, sha256: str | None = None, timeout: float = 60.0) -> str:
    """Download `url` to `path` and return the file's sha256. When `sha256` is given and the
    download does not match it, nothing is left at `path` and the error says what to do."""
    path = Path(path)
    how = (
        f"download {url} yourself on a machine that is online and put it at {path}"
        + (f" (sha256 {sha256})" if sha256 else "")
        + ", or point the denoiser's `path` in the config to a copy you already have"
    )
    digest = hashlib.sha256()
    start, done = time.perf_counter(), 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, atomic_path(path) as tmp:
            length = response.headers.get("Content-Length")
            total = int(length) if length else None
            log.info(
                "downloading %s (%s) to %s", url, "size unknown" if total is None else f"{total / 2**20:.1f} MiB", path
            )
            with open(tmp, "wb") as out:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    if (done + len(chunk)) // REPORT_EVERY > done // REPORT_EVERY:
                        log.info(
                            "%.0f MiB of %s (%.0f s)",
                            (done + len(chunk)) / 2**20,
                            "?" if total is None else f"{total / 2**20:.0f}",
                            time.perf_counter() - start,
                        )
                    done += len(chunk)
            if total is not None and done != total:
                raise DataFileError(
                    f"{url}: the download ended after {done} of {total} bytes. To fix: run again, or {how}"
                )
            actual = digest.hexdigest()
            if sha256 is not None and actual != sha256.lower():
                raise DataFileError(
                    f"{url}: sha256 mismatch: expected {sha256.lower()}, got {actual} ({done} bytes); "
                    f"nothing was written to {path}. The server sent another file than the config "
                    f"expects: check the url and sha256 in the config, or {how}"
                )
    except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
        raise DataFileError(f"could not download {url} ({err}). To fix: {how}") from None
    log.info("downloaded %d bytes in %.0f s, sha256 %s", done, time.perf_counter() - start, actual)
    return actual
