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


# ---------------------------------------------------------------- file:// mirror, cache
def test_file_url_good_and_bad_hash(tmp_path):
    from pympisr.errors import DataIntegrityError

    source = tmp_path / "mirror" / "calibrations" / "3.mdf"
    source.parent.mkdir(parents=True)
    payload = b"MDF bytes " * 1000
    source.write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    good = download(source.as_uri(), tmp_path / "good.mdf", sha256=digest, progress=False)
    assert good.read_bytes() == payload
    with pytest.raises(DataIntegrityError, match="does not match"):
        download(source.as_uri(), tmp_path / "bad.mdf", sha256="f" * 64, progress=False)
    assert not (tmp_path / "bad.mdf").exists()
    # a cached file whose bytes changed is refused, not silently used
    good.write_bytes(b"tampered")
    with pytest.raises(DataIntegrityError, match="exists but its sha256 differs"):
        download(source.as_uri(), good, sha256=digest, progress=False)


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    from pympisr.download import cache_dir

    monkeypatch.setenv("PYMPISR_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv("PYMPISR_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "pympisr"


def _mirror(tmp_path):
    """A file:// OpenMPI mirror with small files in OpenMPI's folder layout."""
    root = tmp_path / "mirror"
    for relative, text in (("calibrations/3.mdf", b"calibration"),
                           ("measurements/resolutionPhantom/3.mdf", b"measurement")):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(text)
    return root


def test_fetch_openmpi_uses_the_cache(tmp_path, monkeypatch):
    from pympisr import openmpi

    root = _mirror(tmp_path)
    cache = tmp_path / "cache"
    monkeypatch.setitem(openmpi.SHA256, "calibrations/3.mdf",
                        hashlib.sha256(b"calibration").hexdigest())
    path = openmpi.fetch_openmpi("calibrations/3.mdf", cache=cache, base=root.as_uri() + "/",
                                 progress=False)
    assert path == cache / "openmpi" / "calibrations" / "3.mdf"
    (root / "calibrations" / "3.mdf").write_bytes(b"changed on the server")
    again = openmpi.fetch_openmpi("calibrations/3.mdf", cache=cache, base=root.as_uri(),
                                  progress=False)
    assert again.read_bytes() == b"calibration"  # reused, not fetched again


def test_openmpi_data_prefers_real_files(tmp_path, recwarn):
    from pympisr.openmpi import openmpi_data

    root = _mirror(tmp_path)
    files = openmpi_data("resolution", cache=tmp_path / "cache", download=True,
                         base=root.as_uri(), allow_standin=False, progress=False)
    assert not files.standin and files.reference is None
    assert files.calibration.read_bytes() == b"calibration"
    assert files.measurement.read_bytes() == b"measurement"
    assert "openMPIData" not in files.source and root.as_uri() in files.source
    assert not [w for w in recwarn if "stand-in" in str(w.message)]


def test_openmpi_data_without_files_or_standin(tmp_path):
    from pympisr.errors import DataUnavailableError
    from pympisr.openmpi import openmpi_data

    with pytest.raises(DataUnavailableError, match="not in the cache"):
        openmpi_data(cache=tmp_path, allow_standin=False)
    missing = (tmp_path / "no-mirror").as_uri()
    with pytest.raises(DataUnavailableError, match="download from .* failed"):
        openmpi_data(cache=tmp_path, allow_standin=False, download=True, base=missing,
                     progress=False)
    with pytest.raises(ValueError, match="unknown OpenMPI phantom"):
        openmpi_data("brain", cache=tmp_path, allow_standin=False)
