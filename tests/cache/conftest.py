"""An S3-protocol server on 127.0.0.1 for the shared-cache tests: moto's server mode.

One server per test session, started here and stopped here; each test gets its own bucket.
The credentials are dummies made up per session (they reach the server, nothing else, and
the tests check they are written nowhere). No real AWS: the endpoint is the local server,
and the AWS config files are pointed at paths that do not exist.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3_support import Bucket, S3Server


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    pytest.importorskip("s3fs", reason="s3fs is missing: pip install -e '.[dev,all]'")
    server_module = pytest.importorskip(
        "moto.server", reason="moto's server is missing: pip install -e '.[dev,all]'"
    )
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        assert host == "127.0.0.1"
        yield S3Server(
            endpoint=f"http://{host}:{port}",
            key_id="wattwise-test-key-" + uuid.uuid4().hex[:8],
            secret="wattwise-test-secret-" + uuid.uuid4().hex,
        )
    finally:
        server.stop()


@pytest.fixture
def s3(s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Bucket:
    """A new bucket, and this process's environment pointed at the server."""
    import s3fs

    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in s3_server.env(tmp_path).items():
        monkeypatch.setenv(name, value)
    fs = s3fs.S3FileSystem(skip_instance_cache=True, **s3_server.options())
    name = "team-" + uuid.uuid4().hex[:12]
    fs.mkdir(name)
    return Bucket(s3_server, name, fs)
