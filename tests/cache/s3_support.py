"""Helpers for the shared-cache tests: the S3 server's coordinates, a bucket, file walks."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@dataclasses.dataclass(frozen=True)
class S3Server:
    """The running server: its endpoint and the session's dummy credentials."""

    endpoint: str
    key_id: str
    secret: str

    def env(self, base: Path) -> dict[str, str]:
        """The variables a process needs to reach the server, and nothing real."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_CONFIG_FILE": str(base / "no-aws-config"),
            "AWS_SHARED_CREDENTIALS_FILE": str(base / "no-aws-credentials"),
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def options(self) -> dict[str, Any]:
        """fsspec storage options that reach the server without any environment."""
        return {"endpoint_url": self.endpoint, "key": self.key_id, "secret": self.secret}


@dataclasses.dataclass(frozen=True)
class Bucket:
    """A fresh bucket on the server; ``url`` is the team cache's URL inside it."""

    server: S3Server
    name: str
    fs: Any

    @property
    def url(self) -> str:
        return f"s3://{self.name}/team-cache"

    def objects(self) -> dict[str, bytes]:
        """Every object in the bucket: key → bytes, read straight from the server."""
        self.fs.invalidate_cache()
        return {path: self.fs.cat_file(path) for path in self.fs.find(self.name)}


def walk_files(*roots: Path) -> Iterator[Path]:
    """Every regular file under ``roots``."""
    for root in roots:
        for folder, _, names in os.walk(root):
            for name in names:
                path = Path(folder) / name
                if path.is_file() and not path.is_symlink():
                    yield path
