#!/usr/bin/env python3
"""pyftpdlib_server.py — pyftpdlib as perf/compare.sh runs it.

Usage: pyftpdlib_server.py [--upload] ROOT PORT MAX_SESSIONS

Anonymous read-only FTP of ROOT on 127.0.0.1:PORT in one process (epoll
IOLoop), sendfile for RETR, per-command logging off (WARNING and up only),
MAX_SESSIONS sessions allowed in all and from one address. --upload gives
anonymous write permissions too (elradfmw: the upload workload).
"""
import logging
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer

LISTEN_BACKLOG = 4096


def main(argv):
    upload = argv[:1] == ["--upload"]
    if upload:
        argv = argv[1:]
    if len(argv) != 3:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    root, port, max_sessions = argv[0], int(argv[1]), int(argv[2])
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    authorizer = DummyAuthorizer()
    if upload:
        authorizer.add_anonymous(root, perm="elradfmw")
    else:
        authorizer.add_anonymous(root)   # read-only permissions by default

    class Handler(FTPHandler):
        pass

    Handler.authorizer = authorizer
    Handler.use_sendfile = True
    Handler.banner = "pyftpdlib ready."
    server = FTPServer(("127.0.0.1", port), Handler, backlog=LISTEN_BACKLOG)
    server.max_cons = max_sessions
    server.max_cons_per_ip = max_sessions
    server.serve_forever(handle_exit=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
