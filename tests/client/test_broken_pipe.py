"""`raas status | head`: when the reader of raas's output goes away, raas exits quietly with
status 1, no traceback (Python's recipe for SIGPIPE). Unit test of main()'s handling, with a
command that only prints (every real command needs a robot or a service)."""

from __future__ import annotations

import os
import subprocess
import sys

PRINTS = """
import argparse, sys
import raas_client.cli as cli

def parser():
    p = argparse.ArgumentParser(prog="raas")
    p.set_defaults(func=lambda args: print("a line of status" * 100) or 0)
    return p

cli.build_parser = parser
sys.exit(cli.main([]))
"""


def test_raas_exits_quietly_when_its_reader_goes_away() -> None:
    r, w = os.pipe()
    proc = subprocess.Popen([sys.executable, "-u", "-c", PRINTS], stdout=w, stderr=subprocess.PIPE)
    os.close(r)
    os.close(w)
    _, err = proc.communicate(timeout=120)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err
    assert proc.returncode == 1
