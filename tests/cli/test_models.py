"""``codex-proxy models``: the models a running gateway offers, as a user runs the command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from codex_proxy.mock.server import FakeUpstream

from ..conftest import Gateway
from ..processes import clean_env, free_port

TOKEN = "gw-models-token-7"


def run_models(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "codex_proxy", "models", *args],
        env=clean_env(tmp_path, **env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_lists_the_catalog_with_the_default_marked(
    make_gateway, upstream: FakeUpstream, tmp_path: Path
) -> None:
    gw: Gateway = make_gateway(gateway_token=TOKEN, model=None)
    port = gw.url.rsplit(":", 1)[1]
    result = run_models(tmp_path, CODEX_PORT=port, CODEX_GATEWAY_TOKEN=TOKEN)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "gpt-6-astra  (default)",
        "gpt-5.6-sol",
        "gpt-5.5",
        "gpt-5.4-mini",
    ]
    upstream.set_default_model("gpt-6.2-sol")  # the catalog moves; the gateway caches it
    as_json = run_models(tmp_path, "--json", "--url", f"{gw.url}/v1", "--token", TOKEN)
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["data"][0]["id"] == "gpt-6-astra"


def test_a_configured_default_outside_the_list_is_named(
    make_gateway, upstream: FakeUpstream, tmp_path: Path
) -> None:
    gw: Gateway = make_gateway(model="my-alias", model_aliases={"my-alias": "gpt-5.5"})
    result = run_models(tmp_path, "--url", gw.url)
    assert result.returncode == 0, result.stderr
    assert "my-alias  (default)" in result.stdout.splitlines()


def test_failures(make_gateway, upstream: FakeUpstream, tmp_path: Path) -> None:
    gw: Gateway = make_gateway(gateway_token=TOKEN)
    refused = run_models(tmp_path, "--url", gw.url, "--token", "wrong")
    assert refused.returncode == 1 and "refused the gateway token" in refused.stderr
    nobody = run_models(tmp_path, "--url", f"http://127.0.0.1:{free_port()}")
    assert nobody.returncode == 1 and "no gateway answers" in nobody.stderr
