"""``hdys-rt keys generate DIR``: ZeroMQ CURVE keys for ``hdys-rt serve --curve-keys DIR``."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

NAME = "keys"
HELP = ("make ZeroMQ CURVE keys: a server key pair, client key pairs and the allow-list "
        "(DIR/authorized/) that `hdys-rt serve --curve-keys DIR` accepts")


def add_arguments(p) -> None:
    p.add_argument("action", choices=("generate",), help="what to do")
    p.add_argument("folder", metavar="DIR", help="key folder to create")
    p.add_argument("--client", action="append", metavar="NAME",
                   help="a client key pair to make and authorise; repeatable (default: client)")
    p.add_argument("--force", action="store_true", help="replace keys already in DIR")


def run(args) -> int:
    from hdys_rt.security import AUTHORIZED, SERVER, generate_keys

    made = generate_keys(args.folder, args.client or ["client"], force=args.force)
    clients = [n for n in made if n != SERVER]
    print(f"hdys-rt keys: wrote {args.folder}/{SERVER}.key(_secret) and "
          f"{len(clients)} authorised client key pair(s): "
          + ", ".join(f"{n}.key_secret" for n in clients)
          + f" (allow-list {args.folder}/{AUTHORIZED}/). Serve with --curve-keys "
          f"{args.folder}; give each client its .key_secret and {SERVER}.key", flush=True)
    return 0
