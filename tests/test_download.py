"""The downloader against a local HTTP server on 127.0.0.1 (no outside network)."""

import functools
import hashlib
import http.server
import threading

import pytest

from pympisr.download import download, openmpi_url


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()
    httpd.server_close()


def test_download_verifies_and_keeps(server, tmp_path):
    root, base = server
    payload = bytes(range(256)) * 5000
    (root / "sm.mdf").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "out" / "sm.mdf"
    assert download(base + "sm.mdf", dest, sha256=digest, progress=False) == dest
    assert dest.read_bytes() == payload
    (root / "sm.mdf").write_bytes(b"changed")  # an existing file is kept, not re-fetched
    download(base + "sm.mdf", dest, progress=False)
    assert dest.read_bytes() == payload


def test_bad_checksum_leaves_nothing(server, tmp_path):
    root, base = server
    (root / "x.mdf").write_bytes(b"abc")
    dest = tmp_path / "x.mdf"
    with pytest.raises(ValueError, match="sha256"):
        download(base + "x.mdf", dest, sha256="0" * 64, progress=False)
    assert not dest.exists() and list(tmp_path.glob(".x.mdf*")) == []


def test_openmpi_url():
    assert openmpi_url("/calibrations/17.mdf").endswith("openMPIData/data/calibrations/17.mdf")
