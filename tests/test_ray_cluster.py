"""Ray clusters started by the tests on 127.0.0.1: several nodes, fake GPUs, and `ray job submit`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from ray_helpers import LOOPBACK, RayHead, free_ports, ray_cli  # noqa: E402

from blockcopy_core.data import build_clips  # noqa: E402
from blockcopy_core.models import build_swiftnet  # noqa: E402
from blockcopy_core.pipeline import RunnerConfig  # noqa: E402
from blockcopy_core.pipeline.ray_executor import RayExecutor  # noqa: E402
from blockcopy_core.reporting import read_summary  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def run_on(address: str) -> tuple[list[dict], list]:
    """Start the default actors on the cluster at ``address``, run four clips, return actor infos and results."""
    ray.init(address=address, log_to_driver=False)
    executor = RayExecutor(RunnerConfig(), build_swiftnet("resnet18").state_dict())
    try:
        clips = build_clips("synthetic", clip_length=2, num_clips=4, seed=4, height=64, width=128)
        results = []
        executor.run_phase([[c] for c in clips], "eval", results.extend)
        assert sorted(r.clip_id for r in results) == sorted(c.clip_id for c in clips)
        return executor.infos, results
    finally:
        executor.close()
        ray.shutdown()


def head_node_args(**resources) -> dict:
    """A ray.cluster_utils.Cluster head on 127.0.0.1 without a dashboard, its agent on a free port (not Ray's
    default 52365, which another Ray on the machine may hold). Its other ports are picked free by Ray; its files go
    to this test run's RAY_TMPDIR (conftest). ``Cluster.shutdown`` ends only the processes of its own nodes."""
    (agent_port,) = free_ports(1)
    return {**resources, "node_ip_address": LOOPBACK, "include_dashboard": False,
            "dashboard_agent_listen_port": agent_port}


def test_two_nodes_one_fake_gpu_each():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args=head_node_args(num_cpus=1, num_gpus=1))
    try:
        cluster.add_node(num_cpus=1, num_gpus=1, node_ip_address=LOOPBACK)  # its agent: a free port (Cluster)
        infos, results = run_on(cluster.address)
    finally:
        cluster.shutdown()
    assert len(infos) == 2  # one actor per GPU by default
    assert len({info["node"] for info in infos}) == 2
    assert all(len(info["gpu_ids"]) == 1 for info in infos)
    assert {r.node for r in results} <= {info["node"] for info in infos}


def test_two_fake_gpus_on_one_node_get_one_each():
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args=head_node_args(num_cpus=2, num_gpus=2))
    try:
        infos, _ = run_on(cluster.address)
    finally:
        cluster.shutdown()
    assert sorted(info["cuda_visible_devices"] for info in infos) == ["0", "1"]


@pytest.mark.skipif(ray_cli() is None, reason="no ray CLI")
@pytest.mark.timeout(900)  # starts a cluster, uploads the repository, runs the job
def test_ray_job_submit_runs_the_job(tmp_path):
    # as in an activated virtual environment: `ray` and `python` are this interpreter's
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    env = {**os.environ, "PATH": path, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_ADDRESS": "",
           "RAY_AUTH_MODE": "token"}
    # free ports, a temp dir of its own, and at the end only its own processes ended (never `ray stop`)
    with RayHead("--num-cpus=2", "--include-dashboard=true", env=env) as head:
        report = tmp_path / "report"
        submit = [ray_cli(), "job", "submit", f"--address={head.dashboard_url}", "--working-dir", str(REPO), "--",
                  "python", "-m", "jobs.evaluate", "--res", "64", "--clip-length", "2", "--num-clips-eval", "2",
                  "--num-actors", "1", "--cpus-per-actor", "1", "--report-dir", str(report)]
        done = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        assert "Mean IoU" in done.stdout
        assert read_summary(report)["num_frames"] == 4
