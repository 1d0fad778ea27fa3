"""Perception regression data: a simulated scene's camera streams and ground truth in one bag.

``record_scene_bag`` resets the simulator to a task and seed, lets the arm rest, and records every
stream of the camera contract (compressed colour, lossless depth, intrinsics, extrinsics) plus
``/scene/ground_truth`` for ``seconds`` of simulated time, into an episode bag whose
``metadata.json`` holds what perception is asked to find (``perception.queries``) and the truth
to score it against (``perception.ground_truth``). ``scene_frames`` reads such a bag (or any bag of
the contract) back as frame sets.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from llm_trainer.perception.evaluation import alike_groups, yaw_defined_names
from llm_trainer.perception.frames import FrameAssembler
from llm_trainer.perception.views import CameraView, ObjectQuery
from llm_trainer.sensors.cameras import camera_of_topic

SCHEMA = "llm_trainer.perception_scene/1"


def record_scene_bag(
    task: str, seed: int, out: Path | str, *, seconds: float = 1.0, camera_rate_hz: float = 5.0
) -> Path:
    from llm_trainer.perception.sim_source import queries_for
    from llm_trainer.recording.bag_writer import EpisodeBagWriter
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import load_sim_config
    from llm_trainer.sim.topics import SimTopics
    from llm_trainer.tasks.registry import get_task

    config = load_sim_config()
    config.render_cameras = True
    config.camera_rate_hz = camera_rate_hz
    config.validate()
    sim = MujocoSimulation(config)
    try:
        instance = sim.reset(get_task(task), seed)
        queries = queries_for(instance)
        meta: dict[str, Any] = {
            "perception": {
                "schema": SCHEMA,
                "task": task,
                "seed": seed,
                "instruction": instance.instruction,
                "queries": [q.__dict__ | {"rgb": list(q.rgb) if q.rgb else None} for q in queries],
                "ground_truth": sim.scene_state().to_dict(),
                "yaw_defined": sorted(yaw_defined_names(instance)),
                "alike": alike_groups(queries),
                "cameras": [c.name for c in config.cameras],
            }
        }
        topics = SimTopics(config)
        writer = EpisodeBagWriter(out, meta, typestore=topics.store)
        t0 = sim.time

        def on_step(s) -> None:
            for sample in topics.due_samples(s, s.time - t0, s.time):
                writer.write(sample.topic, sample.msgtype, sample.data, sample.t_ns)

        sim.step_for(seconds, on_step)
        writer.close({}, success=True, status="complete")
        return Path(out)
    finally:
        sim.close()


def scene_queries(meta: dict[str, Any]) -> list[ObjectQuery]:
    return [
        ObjectQuery(
            q["name"], q.get("category", "object"), q.get("description", ""), tuple(q["rgb"]) if q.get("rgb") else None
        )
        for q in meta["perception"]["queries"]
    ]


def scene_frames(bag: Path | str, cameras: set[str] | None = None) -> list[list[CameraView]]:
    """Every complete frame set of the bag, in time order."""
    from llm_trainer.recording.bag_reader import read_episode_bag

    messages = read_episode_bag(bag, topics=None)
    stream = sorted(
        ((t, topic, msg) for topic, items in messages.items() if camera_of_topic(topic) for t, msg in items),
        key=lambda item: item[0],
    )
    assembler = FrameAssembler(only=cameras)
    sets: list[list[CameraView]] = []
    last_stamp = None
    for i, (t, topic, msg) in enumerate(stream):
        assembler.add(topic, msg)
        # A frame set is complete when the next message belongs to a later time (or the bag ends).
        if i + 1 == len(stream) or stream[i + 1][0] != t:
            ready = assembler.ready()
            want = cameras if cameras is not None else set(assembler.cameras)
            if ready and set(ready) >= want and max(ready.values()) != last_stamp:
                last_stamp = max(ready.values())
                sets.append(assembler.frame_set())
    return sets
