"""Ray instances that the tests start and stop themselves, safe beside any other Ray on the machine.

Each one binds free ports on 127.0.0.1 (never Ray's fixed defaults, which a user's cluster may hold), keeps its
sessions, sockets and logs in a temp dir of its own, and is stopped by ending exactly the processes it started:
never `ray stop`, which ends every Ray process on the machine (a user's running jobs included).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

LOOPBACK = "127.0.0.1"
LIVE_HEADS: set[RayHead] = set()  # started and not yet stopped (conftest stops them if it must end a hung run)


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports free on 127.0.0.1 now (held together while chosen, so none repeats)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.bind((LOOPBACK, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def short_temp_dir(prefix: str) -> str:
    """A new temp dir with a short path: Ray puts Unix sockets under it, whose paths may not exceed 107 bytes."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp" if os.path.isdir("/tmp") else None)


def ray_cli() -> str | None:
    """This interpreter's `ray` command (None when Ray's CLI is not installed beside it)."""
    return shutil.which("ray", path=os.path.dirname(sys.executable))


class RayHead:
    """A one-node cluster started by `ray start --head` on 127.0.0.1, with free ports and its own temp dir.

    ``stop`` ends the processes it started: those in the process group of its `ray start` (started in a session
    of its own, which Ray's daemons inherit), everything they spawned (job drivers run in sessions of their own)
    and any process whose command line or working directory lies in its temp dir. Use it as a context manager.
    """

    PORT_FLAGS = ("port", "dashboard-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
                  "runtime-env-agent-port", "metrics-export-port", "ray-client-server-port", "node-manager-port",
                  "object-manager-port")

    def __init__(self, *args: str, env: dict[str, str] | None = None):
        self.args, self.env = list(args), dict(os.environ if env is None else env)
        self.temp_dir = short_temp_dir("bcray")
        self.ports = dict(zip(self.PORT_FLAGS, free_ports(len(self.PORT_FLAGS))))
        self.pgid: int | None = None

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.ports['port']}"

    @property
    def dashboard_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['dashboard-port']}"

    def start(self, timeout: float = 180) -> RayHead:
        cli = ray_cli()
        if cli is None:
            raise RuntimeError("no ray CLI beside this interpreter")
        command = [cli, "start", "--head", f"--node-ip-address={LOOPBACK}", f"--dashboard-host={LOOPBACK}",
                   f"--temp-dir={self.temp_dir}", "--min-worker-port=0", "--max-worker-port=0",  # 0: any free port
                   *(f"--{flag}={port}" for flag, port in self.ports.items()), *self.args]
        starter = subprocess.Popen(command, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.pgid = starter.pid  # the session's process group: the daemons that `ray start` spawns stay in it
        LIVE_HEADS.add(self)
        try:
            output, _ = starter.communicate(timeout=timeout)
        except BaseException:  # too slow, or the test was interrupted (its timeout, Ctrl-C): leave nothing behind
            self.stop()
            raise
        if starter.returncode != 0:
            self.stop()
            raise RuntimeError(f"ray start failed ({starter.returncode}):\n{output[-4000:]}")
        return self

    def processes(self) -> list:
        """The live processes this head started (psutil.Process objects)."""
        import psutil  # Ray ships it (importing ray puts its bundled copy on the path)

        own = {os.getpid(), *(p.pid for p in psutil.Process().parents())}  # never this test run itself
        found = {}
        for proc in psutil.process_iter():
            try:
                if proc.pid in own:
                    continue
                if self.pgid is not None and os.getpgid(proc.pid) == self.pgid:
                    found[proc.pid] = proc
                elif self.temp_dir in " ".join(proc.cmdline()) or proc.cwd().startswith(self.temp_dir + os.sep):
                    found[proc.pid] = proc
            except (psutil.Error, OSError):
                continue  # gone, or not ours to read
        for proc in list(found.values()):
            try:
                for child in proc.children(recursive=True):
                    if child.pid not in own:
                        found.setdefault(child.pid, child)
            except psutil.Error:
                continue
        return list(found.values())

    def stop(self, grace: float = 15) -> None:
        """End this head's processes (SIGTERM, then SIGKILL after ``grace`` seconds) and remove its temp dir."""
        try:
            import psutil
        except ImportError:
            self._stop_group(grace)
        else:
            for _ in range(3):  # again, for any process spawned while the others went down
                procs = [proc for proc in self.processes() if _alive(proc)]
                for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5)):
                    for proc in procs:
                        try:
                            proc.send_signal(sig)
                        except psutil.Error:
                            pass
                    deadline = time.monotonic() + wait
                    while procs and time.monotonic() < deadline:
                        time.sleep(0.2)
                        procs = [proc for proc in procs if _alive(proc)]
                if not procs and not any(_alive(proc) for proc in self.processes()):
                    break
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        LIVE_HEADS.discard(self)

    def _stop_group(self, grace: float) -> None:
        if self.pgid is None:
            return
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 0)):
            try:
                os.killpg(self.pgid, sig)
            except ProcessLookupError:
                return
            time.sleep(wait)

    def __enter__(self) -> RayHead:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _alive(proc) -> bool:
    """Whether ``proc`` (a psutil.Process) still runs: not gone, not a zombie waiting to be reaped."""
    import psutil

    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
