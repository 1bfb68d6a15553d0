import faulthandler
import os
import secrets
import shutil
import signal
import sys
import threading

import pytest
from ray_helpers import LIVE_HEADS, short_temp_dir

# Ray started by the tests stays on loopback: with this, Ray resolves its node address to 127.0.0.1 instead
# of the machine's network address. Ray reads it on import, so it is set before any test module imports ray.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

_RAY_ENV = ("RAY_TMPDIR", "RAY_ADDRESS", "RAY_AUTH_TOKEN")
_saved_ray_env: dict[str, str | None] = {}


def pytest_configure(config):
    """Keep every Ray instance the tests start apart from any other Ray on this machine (a user's cluster, another
    test run): the in-process ones (ray.init, ray.cluster_utils.Cluster, the job's own local instance) keep their
    sessions, sockets and address file in a temp dir of this run instead of /tmp/ray, where `ray.init()` would
    find and join a running cluster; none joins a cluster that RAY_ADDRESS names; and token authentication uses a
    token of this run's, so nothing is read from or written to ~/.ray/auth_token."""
    _saved_ray_env.update({name: os.environ.get(name) for name in _RAY_ENV})
    os.environ["RAY_TMPDIR"] = short_temp_dir("bctest")
    os.environ.pop("RAY_ADDRESS", None)
    os.environ["RAY_AUTH_TOKEN"] = secrets.token_hex(32)


def pytest_unconfigure(config):
    for head in list(LIVE_HEADS):
        head.stop()  # a `ray start` head a test left running
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()  # a test that failed half-way left its instance up: end it before its folder goes
    temp_dir = os.environ.get("RAY_TMPDIR")
    if temp_dir and temp_dir != _saved_ray_env.get("RAY_TMPDIR"):
        shutil.rmtree(temp_dir, ignore_errors=True)
    for name, value in _saved_ray_env.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# Per-test timeouts: pytest-timeout (`timeout` in pyproject.toml, @pytest.mark.timeout on longer tests) fails a
# test that overruns by raising in its main thread. A test blocked in a Ray wait (ray.get, ray.wait) does not see
# that exception: Ray's wait loop lets only KeyboardInterrupt through. So a test still running TIMEOUT_GRACE_S
# after its timeout gets a SIGINT, which Ray's waits (and blocking system calls) honour, recorded as this test's
# timeout failure; the run goes on. Should even that not end it, the run stops (stacks dumped, Ray heads that the
# tests started stopped) rather than hang.
TIMEOUT_GRACE_S = 30
_interrupted = pytest.StashKey[int]()


def _timeout_of(item) -> float:
    if item.config.getoption("usepdb", False) or item.config.getoption("trace", False):
        return 0  # someone is debugging
    try:
        from pytest_timeout import _get_item_settings

        return _get_item_settings(item).timeout or 0
    except Exception:  # another pytest-timeout version: the marker, else the ini value
        marker = item.get_closest_marker("timeout")
        value = marker.args[0] if marker and marker.args else item.config.getini("timeout")
        return float(value or 0)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    seconds = _timeout_of(item)
    if not seconds:
        return (yield)
    lock, state = threading.Lock(), {"running": True}

    def interrupt():
        with lock:
            if not state["running"]:
                return
            item.stash[_interrupted] = int(seconds)
            sys.stderr.write(f"\n{item.nodeid}: still running {TIMEOUT_GRACE_S}s after its {seconds:g}s timeout: "
                             "interrupting it (SIGINT)\n")
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
        last_resort.start()

    def give_up():
        with lock:
            if not state["running"]:
                return
        capture = item.config.pluginmanager.getplugin("capturemanager")
        if capture is not None:
            capture.suspend_global_capture(in_=False)  # to the terminal, not a capture that os._exit would lose
        sys.stderr.write(f"\n{item.nodeid} did not stop when interrupted: stopping the test run\n")
        faulthandler.dump_traceback(all_threads=True)
        for head in list(LIVE_HEADS):
            head.stop(grace=5)
        if os.environ.get("RAY_TMPDIR"):  # pytest_unconfigure will not run
            shutil.rmtree(os.environ["RAY_TMPDIR"], ignore_errors=True)
        os._exit(3)

    watchdog = threading.Timer(seconds + TIMEOUT_GRACE_S, interrupt)
    last_resort = threading.Timer(TIMEOUT_GRACE_S, give_up)
    watchdog.daemon = last_resort.daemon = True
    watchdog.start()
    try:
        return (yield)
    finally:
        with lock:
            state["running"] = False
        watchdog.cancel()
        last_resort.cancel()


def _interrupt_as_timeout(item):
    try:
        return (yield)
    except KeyboardInterrupt:
        seconds = item.stash.get(_interrupted, None)
        if seconds is None:
            raise  # a real Ctrl-C: stop the run
        pytest.fail(f"Timeout (>{seconds}s): still blocked {TIMEOUT_GRACE_S}s later, interrupted", pytrace=False)


pytest_runtest_setup = pytest.hookimpl(wrapper=True)(_interrupt_as_timeout)
pytest_runtest_call = pytest.hookimpl(wrapper=True)(_interrupt_as_timeout)
pytest_runtest_teardown = pytest.hookimpl(wrapper=True)(_interrupt_as_timeout)


@pytest.fixture
def official_evaluator(monkeypatch):
    """cityscapesscripts' pixel-level evaluator, set up to run quietly on files under given folders.

    Returns ``score(cityscapes_root, predictions_dir, ground_truth_paths) -> (matched predictions, result)``.
    """
    evaluator = pytest.importorskip("cityscapesscripts.evaluation.evalPixelLevelSemanticLabeling")

    def score(root, predictions, ground_truth):
        for name, value in [("evalInstLevelScore", False), ("evalPixelAccuracy", False), ("quiet", True),
                            ("JSONOutput", False), ("colorized", False), ("cityscapesPath", str(root)),
                            ("predictionPath", str(predictions)), ("predictionWalk", None), ("evalLabels", [])]:
            monkeypatch.setattr(evaluator.args, name, value)
        matched = [evaluator.getPrediction(evaluator.args, gt) for gt in ground_truth]
        return matched, evaluator.evaluateImgLists(matched, ground_truth, evaluator.args)

    return score
