"""Security: endpoints on loopback unless --bind says otherwise, CURVE encryption with an
allow-list (an unauthorised client gets nothing), no unpickling anywhere in the package."""

from __future__ import annotations

import argparse
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import zmq

import hdys_rt
from hdys_rt.client import MarkerSender, Subscriber
from hdys_rt.cli import build_parser
from hdys_rt.commands.serve import check_bind
from hdys_rt.errors import HdysError
from hdys_rt.model.io import load_model
from hdys_rt.security import ClientKeys, CurveServer, generate_keys
from hdys_rt.streams.zmq import ZmqSource

CLI = [sys.executable, "-m", "hdys_rt.cli"]


def serve_args(*argv) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


# --- bind ------------------------------------------------------------------------------------
def test_endpoints_bind_loopback_unless_bind_says_otherwise():
    assert check_bind(serve_args()) == "tcp://127.0.0.1:5560"
    assert check_bind(serve_args("--bind", "0.0.0.0")) == "tcp://0.0.0.0:5560"
    assert check_bind(serve_args("--bind", "::1")) == "tcp://[::1]:5560"
    assert check_bind(serve_args("--publish", "ipc:///tmp/x")) == "ipc:///tmp/x"
    assert check_bind(serve_args("--publish", "tcp://localhost:7000")) == "tcp://localhost:7000"
    with pytest.raises(HdysError, match=r"--publish tcp://0.0.0.0:7000 would listen on 0.0.0.0, "
                       r"but --bind is 127.0.0.1: pass --bind 0.0.0.0"):
        check_bind(serve_args("--publish", "tcp://0.0.0.0:7000"))
    with pytest.raises(HdysError, match=r"--endpoint tcp://\*:7001 would listen on \*"):
        check_bind(serve_args("--source", "zmq", "--bind-source", "--endpoint", "tcp://*:7001"))
    assert check_bind(serve_args("--bind", "*", "--publish", "tcp://*:7002"))


def test_public_bind_warns_without_curve(model_path, endpoint, tmp_path):
    port = endpoint().rsplit(":", 1)[1]
    res = subprocess.run(CLI + ["serve", "--source", "replay", "--seconds", "0.5", "--model",
                                model_path, "--bind", "0.0.0.0", "--publish",
                                f"tcp://0.0.0.0:{port}"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"publish endpoint tcp://0.0.0.0:{port} is reachable from the network and not " \
           "authenticated" in res.stderr
    res = subprocess.run(CLI + ["serve", "--source", "replay", "--publish",
                                f"tcp://0.0.0.0:{port}", "--model", model_path],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1 and res.stderr.count("\n") == 1
    assert "would listen on 0.0.0.0, but --bind is 127.0.0.1" in res.stderr


# --- keys --------------------------------------------------------------------------------------
def test_keys_generate_command(tmp_path):
    d = tmp_path / "keys"
    res = subprocess.run(CLI + ["keys", "generate", str(d), "--client", "exo", "--client",
                                "lab-pc"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in (d / "authorized").iterdir()) == ["exo.key", "lab-pc.key"]
    for name in ("server", "exo", "lab-pc"):
        assert stat.S_IMODE((d / f"{name}.key_secret").stat().st_mode) == 0o600
        assert (d / f"{name}.key").is_file()
    assert ClientKeys.load(d, "exo").server == ClientKeys.load(d, "lab-pc").server
    res = subprocess.run(CLI + ["keys", "generate", str(d)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 1 and "already holds keys" in res.stderr
    assert res.stderr.count("\n") == 1
    with pytest.raises(HdysError, match="client name must be"):
        generate_keys(tmp_path / "k2", ["server"])
    with pytest.raises(HdysError, match="key file .*nokeys/server.key_secret not found"):
        CurveServer(tmp_path / "nokeys")
    generate_keys(tmp_path / "empty2", [])
    with pytest.raises(HdysError, match="holds no client public keys"):
        CurveServer(tmp_path / "empty2")


def test_keys_force_locks_out_old_clients_and_files_are_private(tmp_path):
    d = tmp_path / "keys"
    generate_keys(d, ["exo", "old"])
    old_exo = ClientKeys.load(d, "exo")
    umask = os.umask(0)  # the most permissive umask a user can have
    try:
        generate_keys(d, ["exo"], force=True)
    finally:
        os.umask(umask)
    # the replaced allow-list holds only the new client: "old" and the old "exo" are out
    assert sorted(p.name for p in (d / "authorized").iterdir()) == ["exo.key"]
    assert not (d / "old.key_secret").exists()
    assert ClientKeys.load(d, "exo").public != old_exo.public
    assert stat.S_IMODE((d / "authorized").stat().st_mode) == 0o700
    assert stat.S_IMODE(d.stat().st_mode) == 0o700
    assert stat.S_IMODE((d / "authorized" / "exo.key").stat().st_mode) == 0o644
    assert stat.S_IMODE((d / "exo.key_secret").stat().st_mode) == 0o600
    afile = tmp_path / "a-file"
    afile.write_text("x")
    res = subprocess.run(CLI + ["keys", "generate", str(afile)], capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 1 and res.stderr.count("\n") == 1, res.stderr
    assert "is a file; give a folder" in res.stderr


# --- CURVE -------------------------------------------------------------------------------------
def _count(sub: Subscriber, seconds: float) -> int:
    return sum(1 for _ in sub.frames(timeout=seconds))


def test_curve_serve_only_authorised_subscribers_get_estimates(model_path, endpoint, tmp_path):
    keys, other = tmp_path / "keys", tmp_path / "intruder"
    generate_keys(keys, ["client"])
    generate_keys(other, ["client"])   # a valid key pair, just not on serve's allow-list
    ep = endpoint()
    proc = subprocess.Popen(CLI + ["serve", "--source", "replay", "--loop", "--model",
                                   model_path, "--publish", ep, "--curve-keys", str(keys)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with Subscriber(ep, curve=keys) as good:
            got = list(good.frames(timeout=60, count=20))
        assert len(got) == 20 and got[-1].meta is not None
        wrong_server = ClientKeys.load(keys)
        wrong_server = ClientKeys(wrong_server.public, wrong_server.secret,
                                  ClientKeys.load(other).server)
        with Subscriber(ep, curve=other) as intruder, Subscriber(ep) as plain, \
                Subscriber(ep, curve=wrong_server) as confused, \
                Subscriber(ep, curve=keys) as good:
            assert _count(intruder, 2.0) == 0 and intruder.malformed == 0
            assert _count(plain, 0.5) == 0
            assert _count(confused, 0.5) == 0
            assert len(list(good.frames(timeout=60, count=5))) == 5  # still serving
        res = subprocess.run(CLI + ["listen", "--endpoint", ep, "--curve-keys", str(keys),
                                    "--count", "3", "--format", "json"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 0 and len(res.stdout.splitlines()) == 3, res.stderr
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert "not authenticated" not in err


def test_curve_source_accepts_only_authorised_senders(running, gait, endpoint, tmp_path):
    keys, other = tmp_path / "keys", tmp_path / "intruder"
    generate_keys(keys, ["sender"])
    generate_keys(other, ["sender"])
    ep_good, ep_bad = endpoint(), endpoint()
    curve = CurveServer(keys, zmq.Context.instance())
    try:
        good_src = ZmqSource(ep_good, name="good", curve=curve)
        bad_src = ZmqSource(ep_bad, name="bad", curve=curve)
        with MarkerSender(gait.names, 100.0, ep_good, curve=ClientKeys.load(keys, "sender")) \
                as good, MarkerSender(gait.names, 100.0, ep_bad,
                                      curve=ClientKeys.load(other, "sender")) as bad:
            with running([good_src, bad_src], curve=curve) as r:
                assert good.wait_for_subscriber(20)
                assert not bad.wait_for_subscriber(1.0)  # its handshake is refused
                for i in range(30):
                    good.send(gait.xyz[i])
                    bad.send(gait.xyz[i])
                    time.sleep(0.005)
                assert r.wait_for(lambda: good_src.counters["received"] == 30)
                assert r.wait_for(lambda: r.server.pipelines[0].counters["processed"] == 30)
    finally:
        curve.stop()
    assert bad_src.counters["received"] == 0 and bad_src.counters["malformed"] == 0
    assert r.server.pipelines[0].counters["processed"] == 30


# --- no pickles --------------------------------------------------------------------------------
UNPICKLING = re.compile(r"torch\.load\s*\(|pickle\.loads?\s*\(|allow_pickle\s*=\s*True|"
                        r"weights_only\s*=\s*False|joblib\.load\s*\(|dill\.loads?\s*\(|"
                        r"cloudpickle\.loads?\s*\(|marshal\.loads?\s*\(|"
                        r"torch\.serialization\.load\s*\(")


def test_no_unpickling_anywhere_in_the_package():
    root = Path(hdys_rt.__file__).parent
    repo = root.parent
    files = list(root.rglob("*.py")) + [p for d in ("benchmarks", "bridges", "engines")
                                         for p in (repo / d).rglob("*.py") if (repo / d).is_dir()]
    assert len(files) > 30
    hits = [f"{p}:{i}: {line.strip()}" for p in files
            for i, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
            if UNPICKLING.search(line)]
    assert hits == [], "unpickling found:\n" + "\n".join(hits)


def test_models_load_only_from_safetensors(tmp_path):
    torch.save({"w": torch.zeros(2)}, tmp_path / "model.pt")  # a pickle: never looked at
    with pytest.raises(HdysError, match="expected exactly one .safetensors model"):
        load_model(tmp_path)
    with pytest.raises(HdysError, match="model metadata .*model.json not found"):
        load_model(tmp_path / "model.pt")
