"""Security hygiene: no credentials in logs, only https/loopback hrefs, no shell, safe YAML."""

from __future__ import annotations

import ast
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jointseg.config import ConfigError, load_config
from jointseg.data.assets import check_href
from jointseg.data.download import download_tile
from jointseg.data.errors import DownloadError, StacError
from jointseg.data.providers import SceneInfo
from jointseg.data.secrets import install_secret_filter, redact_text
from jointseg.data.stac import search_scenes, write_scene_list
from jointseg.grid import Tile
from jointseg.simulate.servers import FileServer
from tests.faults import Fault, FaultProxy, Rule
from tests.stackfactory import write_tif

PACKAGE = Path(__file__).parents[1] / "jointseg"
TILE = Tile.at(32633, 500040, 5000040, 240)
SAS = "sv=2021-06-08&se=2030-01-01T00%3A00%3A00Z&sr=c&sp=rl&sig=SECRETSIGNATURE%2Babc%3D"
BEARER = "eyJhbGciOiJSUzI1NiJ9.SECRETCDSETOKEN.sig"


def _scene(href: str) -> SceneInfo:
    return SceneInfo("SIGNED", "2023-06-01T10:00:00Z", 1.0, "05.09", -1000,
                     bands={"B02": href}, epsg=32633, provider="planetary-computer")


@pytest.fixture
def signed_asset(tmp_path: Path):
    """A loopback asset behind a proxy whose first two requests fail (so GDAL logs the
    errors and the download logs its retries, both with the signed URL)."""
    arr = (np.arange(24 * 24, dtype=np.uint16).reshape(24, 24) + 1)
    write_tif(tmp_path / "srv" / "B02.tif", arr, TILE.geobox(10))
    with FileServer(tmp_path / "srv") as fs, FaultProxy(
            fs.url, [Rule("^HEAD /B02", Fault("status", 503), nth=(1, 2))]) as px:
        yield f"{px.url}/B02.tif?{SAS}", arr


def test_signed_download_logs_no_sas_token(
    signed_asset, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    href, arr = signed_asset
    with caplog.at_level(logging.DEBUG):
        download_tile([_scene(href)], TILE, tmp_path / "out", ["B02"], retries=2,
                      backoff_s=0.05)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "503" in text and "B02.tif" in text  # the retries were logged...
    assert "SECRETSIGNATURE" not in text and "sig=" not in text.replace("sig=***", "")


def test_signed_download_cli_stderr_has_no_sas_token(signed_asset, tmp_path: Path) -> None:
    href, _ = signed_asset
    scenes = write_scene_list(tmp_path / "scenes.json", TILE.tile_id, "r", 2023, [_scene(href)])
    env = {**os.environ, "NO_PROXY": "127.0.0.1", "CPL_DEBUG": "ON", "CPL_CURL_VERBOSE": "NO"}
    proc = subprocess.run(
        [sys.executable, "-m", "jointseg.cli", "-vv", "download", str(scenes), "--out-dir",
         str(tmp_path / "out"), "--tile-size-m", "240", "--bands", "B02", "--retries", "2",
         "--backoff-s", "0.05"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    assert "503" in out and "SECRETSIGNATURE" not in out


def test_failed_signed_download_error_has_no_sas_token(tmp_path: Path) -> None:
    write_tif(tmp_path / "srv" / "B02.tif", np.ones((24, 24), np.uint16), TILE.geobox(10))
    # HEAD answers, every GET fails: GDAL's message then quotes the full signed path
    with FileServer(tmp_path / "srv") as fs, FaultProxy(
            fs.url, [Rule("^GET /B02", Fault("status", 503), always=True)]) as px:
        with pytest.raises(DownloadError) as err:
            download_tile([_scene(f"{px.url}/B02.tif?{SAS}")], TILE, tmp_path / "out", ["B02"],
                          retries=1, backoff_s=0.01)
    msg = str(err.value)
    assert "failed after 2 attempts" in msg and f"{px.url}/B02.tif?" in msg
    assert "SECRETSIGNATURE" not in msg and "sig=" not in msg.replace("sig=***", "")


def test_library_loggers_mask_tokens_and_bearer_headers(caplog: pytest.LogCaptureFixture) -> None:
    install_secret_filter()
    url = f"https://pcstacitems.blob.core.windows.net/sentinel2-l2/a/B02.tif?{SAS}"
    s3 = ("https://eodata.dataspace.copernicus.eu/x/B02.jp2?X-Amz-Credential=AKIAEXAMPLE"
          "&X-Amz-Signature=SECRETAMZSIG&X-Amz-Expires=600")
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("pystac_client.stac_api_io").debug(
            "GET %s Headers: {'Authorization': 'Bearer %s'}", url, BEARER)
        logging.getLogger("rasterio._env").warning("HTTP error code: 503 - %s. Retrying", s3)
        logging.getLogger("urllib3.connectionpool").warning("Retrying after error: %s", url)
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in ("SECRETSIGNATURE", "SECRETCDSETOKEN", "SECRETAMZSIG", "AKIAEXAMPLE"):
        assert secret not in text
    assert "sentinel2-l2/a/B02.tif?" in text and "X-Amz-Expires=600" in text
    assert redact_text("Authorization: Bearer abc.def") == "Authorization: ***"


@pytest.mark.parametrize(("href", "ok"), [
    ("https://sentinel-cogs.s3.us-west-2.amazonaws.com/a/B02.tif", True),
    ("s3://eodata/Sentinel-2/a/B02.jp2", True),
    ("/data/B02.tif", True),
    ("file:///data/B02.tif", True),
    ("http://127.0.0.1:8752/a/B02.tif", True),
    ("http://localhost/a/B02.tif", True),
    ("http://example.org/a/B02.tif?sig=SECRET", False),
    ("ftp://example.org/B02.tif", False),
    ("/vsicurl/http://example.org/B02.tif", False),
])
def test_only_https_or_local_hrefs_are_followed(href: str, ok: bool) -> None:
    if ok:
        check_href(href)
    else:
        with pytest.raises(DownloadError) as err:
            check_href(href, what="t: asset B02 of S")
        assert str(err.value).startswith("t: asset B02 of S: ")
        assert "SECRET" not in str(err.value)
    check_href("http://example.org/a/B02.tif", allow_http=True)  # opt-in


def test_download_refuses_plain_http_before_any_request(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"^32633_500040_5000040: asset B02 of SIGNED: "
                       r"refusing plain http:// to a non-loopback host: http://192\.0\.2\.1/"):
        download_tile([_scene("http://192.0.2.1/B02.tif")], TILE, tmp_path, ["B02"],
                      retries=0)
    assert not any(tmp_path.iterdir())


def test_search_refuses_plain_http_api() -> None:
    from shapely.geometry import box

    with pytest.raises(StacError, match=r"^STAC API URL http://192\.0\.2\.1/v1: refusing"):
        search_scenes("http://192.0.2.1/v1", "sentinel-2-l2a", box(0, 0, 1, 1),
                      "2021-01-01", "2021-12-31", 50, 5, timeout_s=1)


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node, ast.unparse(node.func)


def test_no_shell_strings_in_the_package() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for call, name in _calls(ast.parse(path.read_text())):
            if any(k.arg == "shell" and not (isinstance(k.value, ast.Constant)
                                             and k.value.value is False)
                   for k in call.keywords):
                offenders.append(f"{path}:{call.lineno}: {name}(shell=...)")
            if name in ("os.system", "os.popen", "subprocess.getoutput",
                        "subprocess.getstatusoutput"):
                offenders.append(f"{path}:{call.lineno}: {name}")
            if name.startswith("subprocess.") and call.args and isinstance(
                    call.args[0], ast.JoinedStr | ast.Constant) and isinstance(
                    getattr(call.args[0], "value", ""), str | type(None)):
                offenders.append(f"{path}:{call.lineno}: {name} with a command string")
    assert offenders == []


def test_yaml_is_only_loaded_with_the_safe_loader(tmp_path: Path) -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for call, name in _calls(ast.parse(path.read_text())):
            if name in ("yaml.load", "yaml.unsafe_load", "yaml.full_load", "yaml.load_all",
                        "yaml.unsafe_load_all", "yaml.full_load_all"):
                loader = next((ast.unparse(k.value) for k in call.keywords
                               if k.arg == "Loader"), "")
                if "Safe" not in loader:
                    offenders.append(f"{path}:{call.lineno}: {name}")
    assert offenders == []
    # and a Python object tag is refused, not executed
    marker = tmp_path / "pwned"
    bad = tmp_path / "config.yaml"
    bad.write_text(f"year: !!python/object/apply:os.system ['touch {marker}']\nregions: {{}}\n")
    with pytest.raises(ConfigError, match=rf"^{bad}: not valid YAML: could not determine a "
                       r"constructor for the tag 'tag:yaml.org,2002:python/object/apply:os"):
        load_config(bad)
    assert not marker.exists()


def test_scene_list_keeps_signed_hrefs_out_of_the_manifest(signed_asset, tmp_path: Path) -> None:
    href, _ = signed_asset
    manifest = download_tile([_scene(href)], TILE, tmp_path / "out", ["B02"], retries=2,
                             backoff_s=0.05)
    assert "SECRETSIGNATURE" not in manifest.read_text()
    assert json.loads(manifest.read_text())["scenes"][0]["files"] == {"B02": "SIGNED/B02.tif"}
