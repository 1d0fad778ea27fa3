"""The fast path: the same episodes as the node graph, in this process, with the same bags and records.

``--runner inprocess`` runs the same core code the nodes wrap (simulator, planner, executor, the
task's success check) without DDS in between, and records each episode with the very bytes the
simulator node would have published (``llm_trainer.sim.topics``) plus the executor's primitive
events, into the same bag layout. So exporters, ``show`` and the episode records cannot tell the
runners apart; the graph stays the integration path (and the only one for a real robot).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from llm_trainer.datagen.episode import run_episode_in_process
from llm_trainer.episodes import EpisodeRecord
from llm_trainer.recording.bag_writer import EpisodeBagWriter
from llm_trainer.sim.topics import SimTopics


class InProcessRecorder:
    """Writes one episode's bag from inside the physics loop (``on_step``) and the executor's feedback."""

    def __init__(self, sim, bags_dir: Path):
        self.sim = sim
        self.topics = SimTopics(sim.config)
        self.bags_dir = Path(bags_dir)
        self.offset = 0.0  # [s] ROS time at the current episode's MuJoCo time 0 (time runs on across resets)
        self.bag: EpisodeBagWriter | None = None
        self._last_time = 0.0

    def before_reset(self) -> None:
        self.offset += self.sim.time
        self.topics.restart()

    def start(self, episode_id: str, metadata: dict[str, Any]) -> None:
        self.bag = EpisodeBagWriter(self.bags_dir / episode_id, metadata, typestore=self.topics.store)

    def on_step(self, sim) -> None:
        if self.bag is None:
            return
        for s in self.topics.due_samples(sim, sim.time, self.offset + sim.time):
            self.bag.write(s.topic, s.msgtype, s.data, s.t_ns)

    def primitive_event(self, plan, status, total: int) -> None:
        """The executor node's ``~/primitive_events``, stamped with simulation time."""
        if self.bag is None:
            return
        from llm_trainer.primitives import PrimitiveKind

        T = self.topics.T
        stamp = self.offset + self.sim.time
        prim = plan[status.index]
        pos = prim.position if prim.position is not None else (0.0, 0.0, 0.0)
        msg = T["llm_trainer_interfaces/msg/PrimitiveEvent"](
            header=self.topics._header(stamp),
            index=int(status.index),
            total=int(total),
            primitive=T["llm_trainer_interfaces/msg/Primitive"](
                kind=int(prim.kind),
                position=self.topics._point(pos),
                yaw=float(prim.yaw),
                object_name=prim.object_name if prim.kind == PrimitiveKind.CLOSE_GRIPPER else "",
            ),
            status=T["llm_trainer_interfaces/msg/PrimitiveStatus"](
                index=int(status.index),
                kind=int(status.kind),
                status=int(status.status),
                planning_time=float(status.planning_time),
                execution_time=float(status.execution_time),
                tracking_error=float(status.tracking_error),
                message=status.message,
            ),
        )
        data = bytes(self.topics.store.serialize_cdr(msg, "llm_trainer_interfaces/msg/PrimitiveEvent"))
        self.bag.write(
            "/executor/primitive_events", "llm_trainer_interfaces/msg/PrimitiveEvent", data, int(stamp * 1e9)
        )

    def stop(self, record: EpisodeRecord) -> str:
        assert self.bag is not None
        bag, self.bag = self.bag, None
        bag.close({"record": record.to_dict()}, success=record.success, status="complete")
        return str(bag.path)


class InProcessRunner:
    """One simulator, planner and executor in this process, episode after episode."""

    def __init__(
        self,
        planner_name: str,
        *,
        render_cameras: bool,
        camera_rate_hz: float,
        record_dir: Path | None,
        concurrency: int = 1,
        planner_overrides: dict | None = None,
        planner_base_url: str = "",
        state: str = "ground_truth",
    ):
        from llm_trainer.config import to_dict, with_overrides
        from llm_trainer.execution.backend import DirectSimBackend
        from llm_trainer.execution.executor import PlanExecutor
        from llm_trainer.execution.executor_config import load_executor_config
        from llm_trainer.planning.registry import load_planner_config, make_planner
        from llm_trainer.sim.mujoco_sim import MujocoSimulation
        from llm_trainer.sim.sim_config import load_sim_config

        sim_config = load_sim_config()
        sim_config.render_cameras = render_cameras
        sim_config.camera_rate_hz = camera_rate_hz
        sim_config.validate()
        self.sim = MujocoSimulation(sim_config)
        overrides = dict(planner_overrides or {})
        if planner_base_url:
            overrides["openai.base_url"] = planner_base_url
        planner_config = with_overrides(load_planner_config(), overrides, "planner")
        self.prompt_config = to_dict(planner_config.llm.prompt)
        self.planner = make_planner(planner_name, planner_config)
        self.recorder = InProcessRecorder(self.sim, record_dir / "bags") if record_dir is not None else None
        on_step = self.recorder.on_step if self.recorder else None
        self.executor = PlanExecutor(DirectSimBackend(self.sim, on_step), load_executor_config())
        self.concurrency = concurrency
        self.perceive = None
        if state == "perception":
            from llm_trainer.perception.scene_source import PerceivedScene

            self.perceive = PerceivedScene()
        self._preview = threading.local()

    def run_all(self, slots) -> Iterator[EpisodeRecord]:
        """Every slot in order; with ``concurrency`` K > 1, up to K planning requests are in flight
        (each on the scene a private simulator previews for that task and seed) while episodes execute."""
        if self.concurrency <= 1:
            for slot in slots:
                yield self.run(slot.task, slot.seed, slot.episode_id, slot.index)
            return
        slots = list(slots)
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="plan-ahead") as pool:
            ahead = deque(pool.submit(self._plan_ahead, s.task, s.seed) for s in slots[: self.concurrency])
            for k, slot in enumerate(slots):
                planned = ahead.popleft().result()
                if k + self.concurrency < len(slots):
                    nxt = slots[k + self.concurrency]
                    ahead.append(pool.submit(self._plan_ahead, nxt.task, nxt.seed))
                yield self.run(slot.task, slot.seed, slot.episode_id, slot.index, planned=planned)

    def _plan_ahead(self, task: str, seed: int):
        from llm_trainer.planning.base import PlanRequest
        from llm_trainer.sim.mujoco_sim import MujocoSimulation
        from llm_trainer.sim.sim_config import SimConfig
        from llm_trainer.tasks.registry import get_task

        sim = getattr(self._preview, "sim", None)
        if sim is None:
            sim = self._preview.sim = MujocoSimulation(
                SimConfig(**{**self.sim.config.__dict__, "render_cameras": False})
            )
        instance = sim.reset(get_task(task), seed)
        scene = sim.scene_state()
        return scene.to_dict(), self.planner.plan(PlanRequest(instance.instruction, scene, task, instance.goal))

    def run(self, task: str, seed: int, episode_id: str, index: int, planned=None) -> EpisodeRecord:
        t0 = time.perf_counter()
        if self.recorder:
            self.recorder.before_reset()
        record = run_episode_in_process(
            self.sim, self.planner, self.executor, task, seed, episode_id=episode_id, index=index,
            prompt_config=self.prompt_config, recorder=self.recorder, planned=planned, perceive=self.perceive,
        )  # fmt: skip
        record.timing["wall"] = time.perf_counter() - t0
        return record

    def close(self) -> None:
        self.planner.close()
        self.sim.close()
