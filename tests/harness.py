"""What the Python end-to-end tests share: free ports, waiting for a server, the Lambda emulator and
the function process behind it, and stopping everything they started by PID.

    from harness import Processes, free_port, function_env
"""

import os
import pathlib
import socket
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def free_port():
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, what, seconds=30):
    """Returns once something accepts connections on 127.0.0.1:`port`; exits naming `what` otherwise."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    sys.exit(f"{what} did not listen on 127.0.0.1:{port} within {seconds} s")


def function_env(runtime_port, **settings):
    """The environment Lambda gives the function, with its Runtime API at the emulator on
    `runtime_port`, plus `settings`."""
    lambda_sets = {"AWS_LAMBDA_RUNTIME_API": f"http://127.0.0.1:{runtime_port}/.rt/object-detector",
                   "AWS_LAMBDA_FUNCTION_NAME": "object-detector", "AWS_LAMBDA_FUNCTION_VERSION": "1",
                   "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769"}
    return {**os.environ, **lambda_sets, **settings}


class Processes:
    """Processes started for one test, all stopped by PID when the `with` block ends: terminated,
    then killed after 10 s."""

    def __init__(self, logs):
        self.logs = pathlib.Path(logs)
        self.started = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for p in self.started:
            p.terminate()
        for p in self.started:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return False

    def start(self, command, log=None, stdout=None, **popen):
        """Starts `command`. Its stderr goes to the file `log` in the logs folder (or nowhere), its stdout
        to the file `stdout` there when given, else along with stderr."""
        err = open(self.logs / log, "w") if log else subprocess.DEVNULL
        out = open(self.logs / stdout, "w") if stdout else err
        p = subprocess.Popen([str(c) for c in command], stdout=out, stderr=err, **popen)
        self.started.append(p)
        return p

    def emulator(self, port, log):
        """`cargo lambda watch` serving the Invoke and Runtime APIs on `port`, once it listens."""
        # cargo-lambda comes with the Python tools: found beside this interpreter without PATH.
        path = os.pathsep.join([str(pathlib.Path(sys.executable).parent), os.environ.get("PATH", "")])
        self.start(["cargo", "lambda", "watch", "--only-lambda-apis", "-P", str(port)], log, cwd=ROOT,
                   env=dict(os.environ, PATH=path))
        wait_for_port(port, "cargo lambda watch", 60)
