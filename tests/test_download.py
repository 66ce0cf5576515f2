"""Checkpoint downloads against a local HTTP server: resume, verification, offline errors."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from conftest import unused_local_port
from segany.cli.main import main
from segany.download import cache_dir, checkpoint_path, download_checkpoint, fetch_checkpoint
from segany.errors import DownloadError, ModelNotFoundError
from segany.modeling.build import build_model
from segany.registry import build_sam, get_spec

PAYLOAD = bytes(range(256)) * 1024  # 256 KiB: several 1 MiB-chunk-free reads, still instant
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()
FILE_NAME = "weights.pth"


@dataclasses.dataclass
class ServerState:
    """What the test server serves and how it misbehaves; `requests` logs each Range header."""

    mode: str = "normal"  # normal | drop | corrupt | ignore_range | missing
    body: bytes = PAYLOAD
    drop_after: int = len(PAYLOAD) // 3
    requests: list[str | None] = dataclasses.field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's naming)
        state: ServerState = self.server.state
        wanted = self.headers.get("Range")
        state.requests.append(wanted)
        if state.mode == "missing":
            self.send_error(404, "Not Found")
            return
        body, start = state.body, 0
        if state.mode == "corrupt":
            body = body[:1000] + bytes([body[1000] ^ 0xFF]) + body[1001:]
        match = re.fullmatch(r"bytes=(\d+)-", wanted or "")
        if match and state.mode != "ignore_range":
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if state.mode == "drop":
            # Promise the whole body, send part of it, hang up: a dropped connection.
            self.wfile.write(chunk[: state.drop_after])
            self.close_connection = True
            return
        self.wfile.write(chunk)

    def log_message(self, format, *args):  # keep pytest output clean
        pass


@pytest.fixture(autouse=True)
def _no_proxy_and_isolated_cache(monkeypatch, tmp_path):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("SEGANY_HOME", str(tmp_path / "home"))


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = ServerState()
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def _url(httpd) -> str:
    host, port = httpd.server_address[:2]
    return f"http://{host}:{port}/files/{FILE_NAME}"


def _spec(url: str, sha256: str | None = PAYLOAD_SHA):
    """test_tiny with download fields filled in, the way a test (or a mirror) overrides them."""
    return dataclasses.replace(get_spec("test_tiny"), url=url, sha256=sha256)


# --- success ----------------------------------------------------------------------------------


def test_download_and_verify(server, tmp_path):
    path = download_checkpoint(_spec(_url(server)), dest_dir=tmp_path / "dl", progress=False)
    assert path == tmp_path / "dl" / FILE_NAME
    assert path.read_bytes() == PAYLOAD
    assert not path.with_name(FILE_NAME + ".part").exists()
    assert server.state.requests == [None]


def test_default_destination_is_under_segany_home(server, tmp_path):
    spec = _spec(_url(server))
    path = download_checkpoint(spec, progress=True)  # tqdm, if installed, writes to stderr
    assert path == tmp_path / "home" / "checkpoints" / FILE_NAME == checkpoint_path(spec)
    assert path.read_bytes() == PAYLOAD


def test_url_argument_overrides_the_spec(server, tmp_path):
    spec = _spec("http://127.0.0.1:9/unused.pth")
    path = download_checkpoint(spec, url=_url(server), dest_dir=tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD


# --- without a sha256: verified by contents ---------------------------------------------------


def _checkpoint_bytes(name: str, tmp_path: Path, wrap: bool = False) -> bytes:
    """A random-weight checkpoint of model `name`, as a file's bytes ({"model": sd} if wrap)."""
    state_dict = build_sam(name, pretrained=False, seed=0).state_dict()
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / f"{name}.pt"
    torch.save({"model": state_dict} if wrap else state_dict, path)
    return path.read_bytes()


def test_without_sha256_a_checkpoint_of_the_model_is_accepted(server, tmp_path):
    server.state.body = _checkpoint_bytes("test_tiny", tmp_path, wrap=True)
    done = fetch_checkpoint(
        _spec(_url(server), sha256=None), dest_dir=tmp_path / "dl", progress=False
    )
    assert done.path.read_bytes() == server.state.body
    assert done.sha256 == hashlib.sha256(server.state.body).hexdigest()
    assert (done.fetched, done.verified_by) == (True, "contents")
    build_sam("test_tiny", checkpoint=done.path)  # loads strictly

    again = fetch_checkpoint(
        _spec(_url(server), sha256=None), dest_dir=tmp_path / "dl", progress=False
    )
    assert (again.path, again.fetched, again.verified_by) == (done.path, False, "cache")
    assert len(server.state.requests) == 1


def test_without_sha256_a_file_that_is_no_checkpoint_is_deleted(server, tmp_path):
    with pytest.raises(DownloadError, match="not a checkpoint of test_tiny") as info:
        download_checkpoint(_spec(_url(server), sha256=None), dest_dir=tmp_path, progress=False)
    assert "cannot be read as a checkpoint" in str(info.value)
    assert PAYLOAD_SHA in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_without_sha256_a_truncated_checkpoint_is_deleted(server, tmp_path):
    whole = _checkpoint_bytes("test_tiny", tmp_path / "src")
    server.state.body = whole[: len(whole) // 2]
    with pytest.raises(DownloadError, match="cannot be read as a checkpoint"):
        download_checkpoint(_spec(_url(server), sha256=None), dest_dir=tmp_path, progress=False)
    assert not (tmp_path / FILE_NAME).exists()
    assert not (tmp_path / (FILE_NAME + ".part")).exists()


def test_without_sha256_another_models_checkpoint_is_deleted(server, tmp_path):
    server.state.body = _checkpoint_bytes("segany-tiny", tmp_path / "src")
    with pytest.raises(DownloadError, match="shapes are not those of test_tiny"):
        download_checkpoint(_spec(_url(server), sha256=None), dest_dir=tmp_path, progress=False)
    assert not (tmp_path / FILE_NAME).exists()


def test_without_sha256_a_checkpoint_with_other_keys_is_deleted(server, tmp_path):
    state_dict = build_sam("test_tiny", pretrained=False, seed=0).state_dict()
    state_dict["extra.weight"] = torch.zeros(1)
    del state_dict["mask_decoder.iou_token.weight"]
    torch.save(state_dict, tmp_path / "odd.pt")
    server.state.body = (tmp_path / "odd.pt").read_bytes()
    with pytest.raises(DownloadError, match="keys differ") as info:
        download_checkpoint(
            _spec(_url(server), sha256=None), dest_dir=tmp_path / "dl", progress=False
        )
    message = str(info.value)
    assert "1 missing keys (mask_decoder.iou_token.weight)" in message
    assert "1 unexpected keys (extra.weight)" in message


# --- cache hits -------------------------------------------------------------------------------


def test_verified_file_is_not_downloaded_again(server, tmp_path):
    (tmp_path / FILE_NAME).write_bytes(PAYLOAD)
    path = download_checkpoint(_spec(_url(server)), dest_dir=tmp_path, progress=False)
    assert path == tmp_path / FILE_NAME
    assert server.state.requests == []


def test_cached_file_with_wrong_hash_is_replaced(server, tmp_path):
    (tmp_path / FILE_NAME).write_bytes(b"stale")
    path = download_checkpoint(_spec(_url(server)), dest_dir=tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.state.requests == [None]


# --- resuming -----------------------------------------------------------------------------------


def test_dropped_connection_keeps_part_and_next_call_resumes(server, tmp_path):
    spec = _spec(_url(server))
    server.state.mode = "drop"
    with pytest.raises(DownloadError, match="interrupted") as info:
        download_checkpoint(spec, dest_dir=tmp_path, progress=False)
    part = tmp_path / (FILE_NAME + ".part")
    assert str(part) in str(info.value) and "resume" in str(info.value)
    assert part.read_bytes() == PAYLOAD[: server.state.drop_after]
    assert not (tmp_path / FILE_NAME).exists()

    server.state.mode = "normal"
    path = download_checkpoint(spec, dest_dir=tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.state.requests[-1] == f"bytes={server.state.drop_after}-"
    assert not part.exists()


def test_resume_from_existing_part(server, tmp_path):
    (tmp_path / (FILE_NAME + ".part")).write_bytes(PAYLOAD[:5000])
    path = download_checkpoint(_spec(_url(server)), dest_dir=tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.state.requests == ["bytes=5000-"]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    # A .part whose bytes are wrong: appending to it would break the checksum.
    (tmp_path / (FILE_NAME + ".part")).write_bytes(b"\0" * 5000)
    server.state.mode = "ignore_range"
    path = download_checkpoint(_spec(_url(server)), dest_dir=tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.state.requests == ["bytes=5000-"]


def test_complete_part_is_finished_without_a_body(server, tmp_path):
    (tmp_path / (FILE_NAME + ".part")).write_bytes(PAYLOAD)
    path = download_checkpoint(_spec(_url(server)), dest_dir=tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.state.requests == [f"bytes={len(PAYLOAD)}-"]  # answered 416


def test_oversized_part_is_discarded(server, tmp_path):
    (tmp_path / (FILE_NAME + ".part")).write_bytes(PAYLOAD + b"junk")
    path = download_checkpoint(_spec(_url(server)), dest_dir=tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert server.state.requests == [f"bytes={len(PAYLOAD) + 4}-", None]


# --- failures -------------------------------------------------------------------------------------


def test_corrupted_transfer_is_deleted(server, tmp_path):
    server.state.mode = "corrupt"
    with pytest.raises(DownloadError, match="checksum mismatch") as info:
        download_checkpoint(_spec(_url(server)), dest_dir=tmp_path, progress=False)
    assert PAYLOAD_SHA in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_http_error(server, tmp_path):
    server.state.mode = "missing"
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_checkpoint(_spec(_url(server)), dest_dir=tmp_path, progress=False)
    assert "load it as the checkpoint" in str(info.value)
    assert "--" not in str(info.value)  # library wording, no CLI flags


def test_connection_refused_reads_as_offline(tmp_path):
    url = f"http://127.0.0.1:{unused_local_port()}/{FILE_NAME}"
    with pytest.raises(DownloadError) as info:
        download_checkpoint(_spec(url), progress=False, timeout=5)
    message = str(info.value)
    assert f"could not reach {url}" in message
    assert "offline" in message and "load it as the checkpoint" in message
    assert str(tmp_path / "home" / "checkpoints" / FILE_NAME) in message


def test_model_without_url():
    with pytest.raises(DownloadError, match="no official checkpoint"):
        download_checkpoint("test_tiny", progress=False)


def test_unknown_model():
    with pytest.raises(ModelNotFoundError, match="known models"):
        download_checkpoint("vit_z", progress=False)


# --- cache location ---------------------------------------------------------------------------


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("SEGANY_HOME", str(tmp_path / "a"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "a"
    monkeypatch.delenv("SEGANY_HOME")
    assert cache_dir() == tmp_path / "xdg" / "segany"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert cache_dir() == tmp_path / "user" / ".cache" / "segany"


def test_checkpoint_path_of_official_models(tmp_path):
    assert checkpoint_path("vit_b") == tmp_path / "home" / "checkpoints" / "sam_vit_b_01ec64.pth"
    assert checkpoint_path("vit_t").name == "mobile_sam.pt"
    assert isinstance(checkpoint_path(get_spec("vit_h")), Path)


def test_cached_file_of_wrong_size_is_replaced_without_hashing(server, tmp_path, monkeypatch):
    import segany.download as download

    stale = tmp_path / FILE_NAME
    stale.write_bytes(PAYLOAD[:-1])
    hashed = []
    real_hash = download._sha256_of_file

    def spying_hash(path, hasher=None):
        hashed.append(path)
        return real_hash(path, hasher)

    monkeypatch.setattr(download, "_sha256_of_file", spying_hash)
    spec = dataclasses.replace(_spec(_url(server)), size_bytes=len(PAYLOAD))
    assert download_checkpoint(spec, dest_dir=tmp_path, progress=False).read_bytes() == PAYLOAD
    assert stale not in hashed


# --- SAM 2: no published sha256, verified by contents --------------------------------------------


def _sam2_checkpoint(name: str, path: Path) -> Path:
    """A checkpoint file of model `name` in the official {"model": sd} layout, every tensor a
    zero expanded to its shape: right keys and shapes, a few kilobytes (one element stored)."""
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in build_model(get_spec(name)).state_dict().items()}
    zero = torch.zeros(1)
    state_dict = {k: zero.expand(shape) if len(shape) else zero[0] for k, shape in shapes.items()}
    torch.save({"model": state_dict}, path)
    return path


@pytest.mark.parametrize("name", ["sam2.1_hiera_t", "sam2.1_hiera_tiny", "sam2_hiera_large"])
def test_segany_download_verifies_a_sam2_checkpoint_by_its_contents(server, tmp_path, capsys, name):
    spec = get_spec(name)
    server.state.body = _sam2_checkpoint(spec.name, tmp_path / "src.pt").read_bytes()
    code = main(["download", name, "--url", _url(server), "--dest", str(tmp_path / "dl")])
    out, err = capsys.readouterr()
    assert code == 0, err
    path = tmp_path / "dl" / spec.checkpoint_name
    assert out.strip() == str(path) and path.read_bytes() == server.state.body
    digest = hashlib.sha256(server.state.body).hexdigest()
    assert f"sha256 {digest} (verified by contents)" in err


def test_sam2_download_from_a_file_url(tmp_path):
    source = _sam2_checkpoint("sam2.1_hiera_t", tmp_path / "mirror.pt")
    done = fetch_checkpoint(
        "sam2.1_hiera_t", url=source.as_uri(), dest_dir=tmp_path / "dl", progress=False
    )
    assert done.path == tmp_path / "dl" / "sam2.1_hiera_tiny.pt"
    assert done.verified_by == "contents"
    assert done.sha256 == hashlib.sha256(source.read_bytes()).hexdigest()


@pytest.mark.parametrize(
    "other, why",
    [("sam2_hiera_t", "sam2_version 2.0 (expected 2.1)"), ("sam2.1_hiera_s", "depth")],
    ids=["version", "size"],
)
def test_sam2_download_of_another_model_is_refused(tmp_path, other, why):
    source = _sam2_checkpoint(other, tmp_path / "mirror.pt")
    with pytest.raises(DownloadError, match="shapes are not those of sam2.1_hiera_t") as info:
        fetch_checkpoint("sam2.1_hiera_t", url=source.as_uri(), dest_dir=tmp_path / "dl")
    assert why in str(info.value)
    assert list((tmp_path / "dl").iterdir()) == []


def test_sam2_download_cut_short_is_refused(server, tmp_path, capsys):
    whole = _sam2_checkpoint("sam2.1_hiera_t", tmp_path / "src.pt").read_bytes()
    server.state.body = whole[: len(whole) * 2 // 3]
    code = main(["download", "sam2.1_hiera_t", "--url", _url(server), "--dest", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert "not a checkpoint of sam2.1_hiera_t" in err and "cannot be read" in err
    assert not (tmp_path / "sam2.1_hiera_tiny.pt").exists()
