"""Executor that spreads clips over Ray actors, each pinning one GPU (or a few CPU cores).

Weights travel once to a store actor that every actor reads them from; clip descriptors go to actors, which read
or generate the frames themselves, and small results come back. Batches are handed to whichever actor is idle.
An actor whose process dies is restarted by Ray and its batch re-run (Ray retries the call), so every clip is
reported exactly once. This module imports Ray; the rest of the package does not need it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections import deque
from collections.abc import Callable

import ray
import torch
from ray.exceptions import RayActorError

from ..data import Clip
from ..policies import POLICIES_THAT_LEARN
from ..reporting.results import ClipResult
from .config import RunnerConfig, build_runner
from .executor import ResultSink

log = logging.getLogger("blockcopy")
WAIT_SLICE_S = 0.5
GCS_CHECK_S = 2.0  # how often the watchdog checks that Ray's head (GCS) still answers
GCS_LOST_AFTER = 5  # consecutive failed checks after which Ray counts as gone (Ray itself waits 60 s, then exits 1)


class GcsWatchdog:
    """Calls ``on_lost(reason)`` from a background thread when Ray's GCS stops accepting connections, so the job
    can say so in its own words (and exit as it chooses) before Ray's core ends the process with a line of its own."""

    def __init__(self, on_lost: Callable[[str], None]):
        host, port = ray.get_runtime_context().gcs_address.rsplit(":", 1)
        self.address, self.on_lost = (host, int(port)), on_lost
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="gcs-watchdog", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        failures = 0
        while not self._stop.wait(GCS_CHECK_S):
            try:
                socket.create_connection(self.address, timeout=GCS_CHECK_S).close()
                failures = 0
            except OSError as exc:
                failures += 1
                if failures == GCS_LOST_AFTER:
                    self.on_lost(f"its head at {self.address[0]}:{self.address[1]} stopped answering: {exc}")

    def stop(self) -> None:
        self._stop.set()


@ray.remote(num_cpus=0)
class RunStore:
    """What the actors share: the network's weights, each actor's last reported policy state (learned policies),
    and the frames run so far (for the driver's progress).

    Ray re-runs a restarted actor's constructor with its first arguments; the actor then reads the weights and its
    last policy state from here, so it resumes where it was. Actors find it by name: a restartable actor's
    constructor arguments that live in the object store (weights, actor handles) make Ray warn at every start.
    """

    def __init__(self, weights: list[ray.ObjectRef]):
        self._weights = weights  # [the weights' one copy in the object store], which every actor reads
        self.states: dict[int, bytes] = {}
        self.frames = 0

    def weights(self) -> list[ray.ObjectRef]:
        return self._weights

    def put_state(self, slot: int, state: bytes) -> None:
        self.states[slot] = state

    def state(self, slot: int) -> bytes | None:
        return self.states.get(slot)

    def add_frames(self, frames: int) -> None:
        self.frames += frames

    def frames_run(self) -> int:
        return self.frames


@ray.remote
class ClipActor:
    """Holds one BlockCopy SwiftNet (and its policy) on the device Ray assigned and runs the clips it is given.

    Its weights come from the run's ``store``; with a policy that ``learns``, it reports the policy state there
    after every batch and, when Ray restarts it, starts again from the state it last reported.
    """

    def __init__(self, config: RunnerConfig, store_name: str, threads: int, slot: int):
        torch.set_num_threads(threads)
        store = ray.get_actor(store_name)
        context = ray.get_runtime_context()
        # Ray sets CUDA_VISIBLE_DEVICES to this actor's GPUs, so "cuda" is the GPU assigned to it.
        weights = ray.get(ray.get(store.weights.remote())[0])
        self.runner = build_runner(config, weights, actor=context.get_actor_id()[:12],
                                   node=f"{socket.gethostname()}:{context.get_node_id()[:8]}")
        self.slot, self.store, self.learns = slot, store, config.policy in POLICIES_THAT_LEARN
        self.runner.on_frame = lambda frames: store.add_frames.remote(frames)  # not waited for
        reported = ray.get(store.state.remote(slot)) if self.learns else None
        if reported is not None:
            self.runner.load_policy_state(reported)

    def run(self, clips: list[Clip], phase: str, upcoming: list[Clip]) -> list[ClipResult]:
        results = self.runner.run(clips, phase, upcoming)
        self._report_policy_state()
        return results

    def _report_policy_state(self) -> None:
        if self.learns:
            ray.get(self.store.put_state.remote(self.slot, self.runner.policy_state()))

    def info(self) -> dict:
        runner = self.runner
        return {"pid": os.getpid(), "actor": runner.actor, "node": runner.node, "device": str(runner.device),
                "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES", ""), "gpu_ids": ray.get_gpu_ids(),
                "threads": torch.get_num_threads()}

    def policy_state(self) -> bytes | None:
        return self.runner.policy_state()

    def load_policy_state(self, state: bytes) -> None:
        self.runner.load_policy_state(state)
        self._report_policy_state()

    def loop_first_clip(self, clip: Clip) -> None:
        self.runner.loop_first_clip(clip)

    def prime(self, clip: Clip, batch_size: int) -> None:
        self.runner.prime(clip, batch_size)


def connect(address: str | None, num_cpus: int | None = None) -> bool:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``); with neither, start a Ray instance of our own on
    127.0.0.1, never another one already running on the machine (which Ray would otherwise join).

    Returns whether this call connected (and so should disconnect at the end); False when Ray was already up.
    """
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=True)
    else:
        ray.init(address="local", _node_ip_address="127.0.0.1", include_dashboard=False, num_cpus=num_cpus,
                 log_to_driver=True)
    return True


class RayExecutor:
    """Creates the actors, dispatches batches of clips dynamically and collects the results (an ``Executor``)."""

    def __init__(self, config: RunnerConfig, weights: dict[str, torch.Tensor], *, num_actors: int | None = None,
                 cpus_per_actor: float = 2, gpus_per_actor: float = 1, max_restarts: int = 3,
                 disconnect_on_close: bool = False, on_ray_lost: Callable[[str], None] | None = None):
        self.disconnect_on_close = disconnect_on_close
        self.watchdog = GcsWatchdog(on_ray_lost) if on_ray_lost is not None else None
        resources = ray.cluster_resources()
        if config.device != "cpu" and resources.get("GPU", 0) >= gpus_per_actor:
            count = num_actors or int(resources["GPU"] // gpus_per_actor)
            options = {"num_gpus": gpus_per_actor, "num_cpus": min(cpus_per_actor, 1)}
        else:
            count = num_actors or max(1, int(resources.get("CPU", 1) // cpus_per_actor))
            options = {"num_cpus": cpus_per_actor}
        # The weights go once into the object store (held by the store actor, not copied per actor); every actor
        # (and a restarted one) reads that copy.
        store_name = f"blockcopy-run-store-{uuid.uuid4().hex}"
        self.store = RunStore.options(name=store_name).remote([ray.put(weights)])
        threads = max(1, int(cpus_per_actor))
        self.actors = [
            ClipActor.options(max_restarts=max_restarts, max_task_retries=max_restarts, **options)
            .remote(config, store_name, threads, slot)
            for slot in range(count)
        ]
        self.num_actors = count
        self.infos = ray.get([actor.info.remote() for actor in self.actors])
        for info in self.infos:
            log.info("actor %s on %s: device %s, %d threads, CUDA_VISIBLE_DEVICES=%r", info["actor"], info["node"],
                     info["device"], info["threads"], info["cuda_visible_devices"])

    def run_phase(self, batches: list[list[Clip]], phase: str, on_results: ResultSink) -> None:
        if phase == "warmup":
            self._warm_up(batches, on_results)
        else:
            self._dispatch(batches, phase, self.actors, on_results)

    def _warm_up(self, batches: list[list[Clip]], on_results: ResultSink) -> None:
        """One actor learns the policy on all warm-up clips; every actor then starts from its state."""
        self._dispatch(batches, "warmup", self.actors[:1], on_results)
        state = self.policy_state()
        if state is not None:
            ray.get([actor.load_policy_state.remote(state) for actor in self.actors[1:]])

    def policy_state(self) -> bytes | None:
        """The first actor's policy state (after evaluation every actor has learned on its own clips)."""
        return ray.get(self.actors[0].policy_state.remote())

    def load_policy_state(self, state: bytes) -> None:
        ray.get([actor.load_policy_state.remote(state) for actor in self.actors])

    def _dispatch(self, batches: list[list[Clip]], phase: str, actors: list, on_results: ResultSink) -> None:
        # Our own loop rather than ray.util.ActorPool: the pool hands the next batch to an actor whose restarts
        # are exhausted (and that batch fails too), while here a dead actor leaves the rotation and the others
        # take over its share.
        # While enough batches wait for every actor to get one more, each actor's next batch is kept for it
        # (``reserved``) and named in its run call, so it reads that batch's first frames while it runs this one;
        # an actor left idle when the queue runs dry takes another's kept batch.
        queue = deque(batches)
        idle = deque(actors)
        pending: dict = {}
        reserved: dict = {}  # actor -> the batch it runs next
        while queue or pending or reserved:
            while idle and (queue or reserved):
                actor = idle.popleft()
                if actor in reserved:
                    batch = reserved.pop(actor)
                elif queue:
                    batch = queue.popleft()
                else:  # the queue ran dry: a batch kept for a busy actor (which then read ahead in vain)
                    batch = reserved.popitem()[1]
                upcoming = []
                if len(queue) >= len(pending) + len(idle) + 1:  # enough left for every actor in the rotation
                    upcoming = reserved[actor] = queue.popleft()
                pending[actor.run.remote(batch, phase, upcoming)] = (actor, batch)
            if not pending:  # every actor has given up: the rest cannot run
                error = "no actor left: every actor died more often than --max-actor-restarts allows"
                on_results([ClipResult(clip.clip_id, phase, status="failed", error=error)
                            for batch in [*reserved.values(), *queue] for clip in batch])
                return
            # In short waits, so that Ctrl-C and SIGTERM reach the job (Python runs signal handlers between them).
            done, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_SLICE_S)
            for ref in done:
                actor, batch = pending.pop(ref)
                try:
                    results = ray.get(ref)
                except RayActorError as exc:
                    # Restarts exhausted (the clip keeps killing its process): record, and go on without it.
                    error = f"actor died running this clip: {exc}".splitlines()[0]
                    results = [ClipResult(clip.clip_id, phase, status="failed", error=error) for clip in batch]
                    log.error("actor gave up on %s", ", ".join(clip.clip_id for clip in batch))
                    if actor in reserved:  # its next batch goes to the others
                        queue.appendleft(reserved.pop(actor))
                else:
                    idle.append(actor)
                on_results(results)

    def loop_first_clip(self, clip: Clip) -> None:
        ray.get([actor.loop_first_clip.remote(clip) for actor in self.actors])

    def prime(self, clip: Clip, batch_size: int) -> None:
        ray.get([actor.prime.remote(clip, batch_size) for actor in self.actors])

    def frames_done(self) -> int:
        return ray.get(self.store.frames_run.remote())

    def close(self) -> None:
        if self.watchdog is not None:
            self.watchdog.stop()
        for actor in [*self.actors, self.store]:
            ray.kill(actor)
        if self.disconnect_on_close:
            ray.shutdown()  # the local instance this job started goes with it
