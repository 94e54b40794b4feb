"""The README's first command, as a Space runs it: a fresh venv holding only requirements.txt, then `python app.py`,
then every public endpoint called with its own defaults for every shipped model (issue #21, item 1)."""
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
STREAMING = {"/live_tradeoff", "/live_curves", "/beyond_plane"}  # generators: their first update is enough here

pytestmark = pytest.mark.timeout(1500)


def _venv() -> Path:
    """A venv with requirements.txt alone, built once per requirements file (kept in the temp folder)."""
    req = (ROOT / "requirements.txt").read_bytes()
    venv = Path(tempfile.gettempdir()) / f"cfg_requirements_only_{hashlib.sha256(req).hexdigest()[:12]}"
    py = venv / "bin" / "python"
    if not (venv / ".complete").is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(ROOT / "requirements.txt")], check=True)
        (venv / ".complete").write_text("ok\n")
    return py


@pytest.fixture(scope="module")
def bare_app():
    """`python app.py` in the requirements-only venv, on a free port; yields (url, log path)."""
    from conftest import _free_port

    py = _venv()
    probe = subprocess.run([str(py), "-c", "import mlxtend"], capture_output=True)
    assert probe.returncode != 0, "the venv must not hold dev dependencies"
    port = _free_port()
    log = Path(tempfile.mkdtemp(prefix="cfg_bare_app_")) / "app.log"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(GRADIO_SERVER_NAME="127.0.0.1", GRADIO_SERVER_PORT=str(port), PYTHONUNBUFFERED="1",
               GRADIO_EXAMPLES_CACHE=str(log.parent / "examples"))
    with open(log, "w") as out:
        proc = subprocess.Popen([str(py), "app.py"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        import urllib.request

        for _ in range(240):
            assert proc.poll() is None, log.read_text()[-3000:]
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        yield url, log
    finally:
        proc.terminate()
        proc.wait(30)


def _defaults(params: list[dict], model: str) -> list:
    """Each parameter's own default (the component's initial value), with the model selector set to `model`."""
    values = []
    for p in params:
        assert p["parameter_has_default"], p
        values.append(model if p["parameter_name"] == "model" else p["parameter_default"])
    return values


def _cancel(job) -> None:
    """Stop a streaming job and wait until the server has stopped it (the cancel request itself may outlast the
    client's 5 s read timeout while the worker finishes its ≈ 4 s batch)."""
    import httpx

    try:
        job.cancel()
    except httpx.TimeoutException:
        pass
    deadline = time.time() + 60
    while not job.done() and time.time() < deadline:
        time.sleep(0.5)
    assert job.done(), job.status()


def test_every_endpoint_with_its_defaults_on_requirements_txt_alone(bare_app):
    from gradio_client import Client

    url, log = bare_app
    client = Client(url, analytics_enabled=False, download_files=False, verbose=False)
    from core.registry import shipped_models

    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    names = shipped_models()
    assert {"digits", "emoji"} <= set(names), names
    failures = []
    for model in names:
        for name, spec in sorted(api.items()):
            args = _defaults(spec["parameters"], model)
            try:
                if name in STREAMING:
                    job = client.submit(*args, api_name=name)
                    while not job.outputs() and not job.done():
                        time.sleep(0.2)
                    assert job.outputs() or job.result() is not None
                    _cancel(job)
                else:
                    client.predict(*args, api_name=name)
            except Exception as e:  # collect every failure, then report them together
                failures.append(f"{model} {name}: {type(e).__name__}: {str(e)[:200]}")
    text = log.read_text()
    assert not failures, "\n".join(failures) + "\n" + text[-3000:]
    assert "Traceback" not in text, text[-5000:]
