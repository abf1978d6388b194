#!/usr/bin/env python3
"""A standard TUF client against Flotilla's image repository: python-tuf's reference client (ngclient).

Loads a trusted root, refreshes (TUF spec 5.3-5.6), finds one target, downloads it from the
consistent-snapshot URL ngclient builds (<targets-url><app>/<version>/<sha256>.<rootObjectId>) and
verifies its length and hashes (5.7). Every request carries `Authorization: Bearer <token>` through a
custom fetcher (ngclient's FetcherInterface), which is how a python-tuf client adds headers.

Prints one JSON object on stdout: {"ok": true, ...} and exit 0, or {"ok": false, "error", "message",
"status"} and exit 2 when the client refused or failed. Test fixture of
packages/server/test/tuf/standard-clients.test.ts; documented in docs/security.md.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import urllib.error
import urllib.request
from typing import Dict, Iterator, Optional

from tuf.api import exceptions
from tuf.ngclient import FetcherInterface, Updater


class HeaderFetcher(FetcherInterface):
    """urllib with extra request headers; HTTP errors become DownloadHTTPError as ngclient expects."""

    def __init__(self, headers: Dict[str, str], timeout: float = 30.0) -> None:
        self._headers = headers
        self._timeout = timeout

    def _fetch(self, url: str) -> Iterator[bytes]:
        request = urllib.request.Request(url, headers=self._headers)
        try:
            response = urllib.request.urlopen(request, timeout=self._timeout)  # noqa: S310 (test fixture)
        except urllib.error.HTTPError as error:
            error.close()
            raise exceptions.DownloadHTTPError(f"GET {url}: HTTP {error.code}", error.code) from None
        return self._chunks(response)

    @staticmethod
    def _chunks(response) -> Iterator[bytes]:
        with response:
            while True:
                chunk = response.read(64 * 1024)
                if not chunk:
                    return
                yield chunk


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--metadata-url", required=True, help="e.g. http://127.0.0.1:8080/tuf/image/")
    parser.add_argument("--targets-url", required=True, help="e.g. http://127.0.0.1:8080/tuf/image/targets/")
    parser.add_argument("--trusted-root", required=True, help="the image repository's root, trusted out of band")
    parser.add_argument("--target", required=True, help="target path: <app>/<version>/<rootObjectId>")
    parser.add_argument("--work-dir", required=True, help="an empty directory for metadata and targets")
    parser.add_argument("--token", help="sent as Authorization: Bearer <token> (default: none)")
    args = parser.parse_args()

    metadata_dir = os.path.join(args.work_dir, "metadata")
    target_dir = os.path.join(args.work_dir, "targets")
    os.makedirs(metadata_dir, exist_ok=True)
    os.makedirs(target_dir, exist_ok=True)
    shutil.copyfile(args.trusted_root, os.path.join(metadata_dir, "root.json"))
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else {}

    status: Optional[int] = None
    try:
        updater = Updater(
            metadata_dir=metadata_dir,
            metadata_base_url=args.metadata_url,
            target_dir=target_dir,
            target_base_url=args.targets_url,
            fetcher=HeaderFetcher(headers),
        )
        updater.refresh()
        info = updater.get_targetinfo(args.target)
        if info is None:
            raise LookupError(f"no target {args.target} in the image repository")
        path = updater.download_target(info)
    except Exception as error:  # reported, not raised: the test reads the JSON
        cause = error
        while cause is not None and not isinstance(cause, exceptions.DownloadHTTPError):
            cause = cause.__cause__ or cause.__context__
        if isinstance(cause, exceptions.DownloadHTTPError):
            status = cause.status_code
        print(json.dumps({"ok": False, "error": type(error).__name__, "message": str(error), "status": status}))
        return 2

    with open(path, "rb") as downloaded:
        data = downloaded.read()
    print(
        json.dumps(
            {
                "ok": True,
                "target": info.path,
                "length": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
                "signedLength": info.length,
                "signedSha256": info.hashes.get("sha256"),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
