"""ZeroMQ CURVE for serve's endpoints: encryption, and an allow-list of client keys.

A key folder made by ``hdys-rt keys generate DIR`` (:func:`generate_keys`)::

    DIR/server.key            the server's public key: give it to every client
    DIR/server.key_secret     the server's key pair: stays with ``hdys-rt serve``
    DIR/NAME.key              a client's public key (one pair per ``--client NAME``)
    DIR/NAME.key_secret       that client's key pair: give it (and server.key) to that client
    DIR/authorized/NAME.key   the allow-list: serve accepts exactly the public keys in here

``hdys-rt serve --curve-keys DIR`` makes every ZeroMQ socket it owns (the estimates publisher
and ZeroMQ marker sources) a CURVE server whose clients are authenticated by a
``zmq.auth.thread.ThreadAuthenticator`` against ``DIR/authorized/``: a client whose public key
is not there completes no handshake and receives nothing (nor can it send markers). Clients pass
the folder (or :class:`ClientKeys`) to :class:`hdys_rt.client.Subscriber` /
:class:`hdys_rt.client.MarkerSender` as ``curve=``. The allow-list is read when serve starts.
Key files are ZeroMQ's own certificate format (``zmq.auth.load_certificate``).
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import zmq

from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

SERVER = "server"
AUTHORIZED = "authorized"


def _need_curve() -> None:
    if not zmq.has("curve"):
        raise HdysError("this libzmq was built without CURVE support (zmq.has('curve') is "
                        "False); install a pyzmq wheel, which bundles it")


def _load(path: Path, secret: bool) -> tuple[bytes, bytes | None]:
    import zmq.auth

    if not path.is_file():
        raise HdysError(f"key file {path} not found (make keys with `hdys-rt keys generate DIR`)")
    try:
        public, sec = zmq.auth.load_certificate(str(path))
    except (ValueError, OSError) as exc:
        raise HdysError(f"{path}: not a ZeroMQ certificate ({exc})") from None
    if secret and not sec:
        raise HdysError(f"{path}: holds no secret key (use the .key_secret file)")
    return public, sec


def generate_keys(folder: str | os.PathLike, clients=("client",), force: bool = False
                  ) -> dict[str, Path]:
    """Write a server key pair, one key pair per client name, and the allow-list holding those
    clients' public keys; return ``{name: secret key file}``. Refuses to overwrite keys unless
    ``force``."""
    import zmq.auth

    _need_curve()
    folder = Path(folder)
    clients = list(clients)
    for c in clients:
        if not c or c == SERVER or not all(ch.isalnum() or ch in "-_." for ch in c):
            raise HdysError(f"client name must be letters, digits, - _ . and not {SERVER!r}, "
                            f"got {c!r}")
    if len(set(clients)) != len(clients):
        raise HdysError(f"client names must be unique, got {clients}")
    if (folder / f"{SERVER}.key_secret").exists() and not force:
        raise HdysError(f"{folder} already holds keys; choose another folder (or --force to "
                        "replace them, which locks out every client)")
    if folder.exists() and not folder.is_dir():
        raise HdysError(f"{folder} is a file; give a folder for the keys")
    auth = folder / AUTHORIZED
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        auth.mkdir(mode=0o700, exist_ok=True)
        # replacing keys locks out every earlier client: its key leaves the allow-list too
        if force:
            for old in list(auth.glob("*.key")) + list(folder.glob("*.key")) \
                    + list(folder.glob("*.key_secret")):
                old.unlink()
        out = {}
        for name in [SERVER] + clients:
            public, secret = zmq.auth.create_certificates(str(folder), name)
            os.chmod(secret, 0o600)
            os.chmod(public, 0o644)
            out[name] = Path(secret)
            if name != SERVER:
                shutil.copyfile(public, auth / f"{name}.key")
                os.chmod(auth / f"{name}.key", 0o644)
        # whatever the umask: only the owner may add a key to the allow-list
        os.chmod(auth, 0o700)
        os.chmod(folder, 0o700)
    except OSError as exc:
        raise HdysError(f"cannot write keys into {folder}: {exc.strerror or exc}") from None
    return out


@dataclass(frozen=True)
class ClientKeys:
    """A client's key pair and the server's public key (Z85 bytes)."""

    public: bytes
    secret: bytes
    server: bytes

    @classmethod
    def load(cls, folder: str | os.PathLike, name: str = "client") -> "ClientKeys":
        """From a key folder: ``NAME.key_secret`` and ``server.key``."""
        folder = Path(folder)
        public, secret = _load(folder / f"{name}.key_secret", secret=True)
        server, _ = _load(folder / f"{SERVER}.key", secret=False)
        return cls(public, secret, server)


def client_keys(curve) -> ClientKeys | None:
    """``curve`` as given to the client classes: None, a key folder, or :class:`ClientKeys`."""
    if curve is None or isinstance(curve, ClientKeys):
        return curve
    return ClientKeys.load(curve)


def apply_client(sock: zmq.Socket, keys: ClientKeys) -> None:
    """Make ``sock`` a CURVE client of the server whose public key is ``keys.server``."""
    _need_curve()
    sock.curve_publickey = keys.public
    sock.curve_secretkey = keys.secret
    sock.curve_serverkey = keys.server


class CurveServer:
    """The server side: its key pair and a ThreadAuthenticator allowing ``DIR/authorized/``.

    One per ZeroMQ context; :meth:`apply` makes a socket of that context a CURVE server (call it
    before bind/connect). :meth:`stop` ends the authenticator thread.
    """

    def __init__(self, folder: str | os.PathLike, context: zmq.Context | None = None):
        from zmq.auth.thread import ThreadAuthenticator

        _need_curve()
        self.folder = Path(folder)
        self.public, self.secret = _load(self.folder / f"{SERVER}.key_secret", secret=True)
        allowed = self.folder / AUTHORIZED
        keys = sorted(allowed.glob("*.key")) if allowed.is_dir() else []
        if not keys:
            raise HdysError(f"{allowed} holds no client public keys (*.key): nobody could "
                            "connect; add some with `hdys-rt keys generate` or copy them there")
        self.allowed = len(keys)
        self.context = context or zmq.Context.instance()
        self._auth = ThreadAuthenticator(self.context, log=logging.getLogger(__name__ + ".zap"))
        self._auth.start()
        self._auth.configure_curve(domain="*", location=str(allowed))
        log.info("CURVE on: %d authorised client key(s) in %s", self.allowed, allowed)

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def stop(self) -> None:
        if self._auth is not None:
            self._auth.stop()
            self._auth = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
