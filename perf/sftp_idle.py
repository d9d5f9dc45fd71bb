#!/usr/bin/env python3
"""sftp_idle.py — hold N logged-in, idle SFTP sessions, for perf/sftp.sh.

Usage: sftp_idle.py HOST PORT USER KEYFILE N [--cipher NAME] [--parallel P]

Opens N SSH connections (paramiko, public-key login with the OpenSSH
Ed25519 KEYFILE), starts the sftp subsystem on each and does one round trip
(REALPATH "."), so every session is past login and SFTP INIT. P connections
are set up at a time (default 8). Then prints one JSON line on stdout:

  {"held": N_OK, "failed": N_FAILED, "secs": SETUP_SECONDS, "cipher": NAME,
   "first_error": "..."}

and holds every session, idle, until SIGTERM or SIGINT; then closes them. Exit status 0 once the line is printed (failures are counted,
not fatal; the caller decides), 2 on bad arguments.

--cipher NAME is used when paramiko knows it; otherwise the connections use
aes256-ctr with hmac-sha2-256 (paramiko has no chacha20-poly1305), and the
JSON says which cipher it used. The cipher does not change an idle
session's memory much on either server (a few hundred bytes of key state).
"""
import json
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import paramiko


def parse(argv):
    opts = {"--cipher": "aes256-ctr", "--parallel": "8"}
    pos = []
    it = iter(argv)
    for a in it:
        if a in opts:
            opts[a] = next(it)
        else:
            pos.append(a)
    if len(pos) != 5:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    host, port, user, key, n = pos
    return host, int(port), user, key, int(n), opts["--cipher"], int(opts["--parallel"])


def main(argv):
    host, port, user, keyfile, n, cipher, parallel = parse(argv)
    key = paramiko.Ed25519Key.from_private_key_file(keyfile)
    if cipher not in paramiko.Transport._preferred_ciphers:
        cipher = "aes256-ctr"
    held, errors = [], []
    lock = threading.Lock()

    def one(_i):
        t = None
        try:
            t = paramiko.Transport((host, port))
            opts = t.get_security_options()
            opts.ciphers = (cipher,)
            if cipher.endswith("-ctr"):
                opts.digests = ("hmac-sha2-256",)
            t.banner_timeout = 60
            t.auth_timeout = 60
            t.connect(username=user, pkey=key)
            c = paramiko.SFTPClient.from_transport(t)
            c.normalize(".")
            with lock:
                held.append((t, c))
        except Exception as e:  # counted, reported once
            with lock:
                errors.append(f"{type(e).__name__}: {e}")
            if t is not None:
                t.close()

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(one, range(n)))
    out = {"held": len(held), "failed": len(errors), "secs": round(time.monotonic() - t0, 2),
           "cipher": cipher, "first_error": errors[0] if errors else ""}
    print(json.dumps(out), flush=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    for t, c in held:
        try:
            c.close()
            t.close()
        except Exception:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
