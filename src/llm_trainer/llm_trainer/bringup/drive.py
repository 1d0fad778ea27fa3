"""``llm-trainer task "SENTENCE"``: the lab's daily loop against a running graph (simulation or robot).

1. start-up check: the planner service, the executor action, ``/joint_states`` (the robot or the
   simulator) and every required camera must answer within ``timeout``; otherwise refuse, naming each
   missing part, before anything is planned;
2. the current scene from the scene topic (perceived ``/scene/objects``, else the simulator's ground
   truth), printed as a table;
3. the plan from the planner node, printed, and drawn over a camera view (waypoints projected with the
   camera contract's calibration, PNG);
4. a confirmation (unless ``--yes``), the episode recorded (when a recorder runs), the plan executed
   (``--dry-run``: the executor's checks and planning only), the outcome checked (the simulator's
   success check where there is one; on the robot the person judges) and one JSON line.

Nothing here moves anything itself: the executor node's checks, dry-run gate and stop service apply.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

SCENE_TOPICS = ("/scene/objects", "/scene/ground_truth")


@dataclass
class TaskOptions:
    sentence: str = ""
    reset: str = ""  # TASK:SEED - simulation only: reset the scene first (its sentence when none is given)
    cameras: list[str] = field(default_factory=lambda: ["front", "left", "right"])
    scene_topic: str = ""  # "": /scene/objects if perception publishes, else /scene/ground_truth
    picture: Path | None = None  # PNG of the waypoints over the first camera's view
    dry_run: bool = False
    yes: bool = False  # do not ask before executing
    record: bool = True
    backend: str = ""  # planner backend ("" = the node's default)
    timeout: float = 15.0

    def validate(self) -> None:
        if not self.sentence and not self.reset:
            raise ValueError('give the task sentence (llm-trainer task "put the red block in the target area")')
        if self.reset and (":" not in self.reset or not self.reset.rsplit(":", 1)[1].lstrip("-").isdigit()):
            raise ValueError(f"--reset expects TASK:SEED, got {self.reset!r}")
        if self.timeout <= 0:
            raise ValueError("--timeout must be positive")


class Refused(RuntimeError):
    """The start-up check or a step refused; the message says what is missing or wrong."""


def _first_message(node, msg_type, topic: str, timeout: float, qos=10):
    got, event = [], threading.Event()

    def on_msg(msg):
        got.append(msg)
        event.set()

    sub = node.create_subscription(msg_type, topic, on_msg, qos)
    try:
        event.wait(timeout)
        return got[-1] if got else None
    finally:
        node.destroy_subscription(sub)


def preflight(client, options: TaskOptions) -> list[str]:
    """What is missing for a task to run: an empty list when everything answered."""
    from sensor_msgs.msg import CameraInfo, JointState

    from llm_trainer.sensors.cameras import camera_topics

    node, missing = client.node, []
    deadline = time.monotonic() + options.timeout

    def left() -> float:
        return max(0.1, deadline - time.monotonic())

    if not client._plan.wait_for_service(timeout_sec=left()):
        missing.append(f"the planner (no service {client.endpoints.plan})")
    if not client._execute.wait_for_server(timeout_sec=left()):
        missing.append(f"the executor (no action {client.endpoints.execute})")
    if _first_message(node, JointState, "/joint_states", left()) is None:
        missing.append("the robot (no /joint_states)")
    for camera in options.cameras:
        topic = camera_topics(camera).camera_info
        if _first_message(node, CameraInfo, topic, left()) is None:
            missing.append(f"camera {camera} (no {topic})")
    return missing


def current_scene(client, options: TaskOptions):
    from llm_trainer.ros.qos import SCENE_QOS
    from llm_trainer_interfaces.msg import SceneState as SceneStateMsg

    topics = [options.scene_topic] if options.scene_topic else list(SCENE_TOPICS)
    for i, topic in enumerate(topics):
        last = i == len(topics) - 1
        wait = options.timeout if last else min(3.0, options.timeout)
        msg = _first_message(client.node, SceneStateMsg, topic, wait, SCENE_QOS)
        if msg is not None:
            return topic, msg
    raise Refused(f"no scene on {' or '.join(topics)} within {options.timeout:g} s (is perception running?)")


def scene_table(scene) -> str:
    lines = ["| object | centre x, y, z [m] | yaw [deg] | size l, w, h [m] |", "|---|---|---:|---|"]
    for o in scene.objects:
        lines.append(f"| {o.name} | {', '.join(f'{v:.3f}' for v in o.position)} | {np.degrees(o.yaw):.0f} | "
                     f"{', '.join(f'{v:.3f}' for v in o.size)} |")  # fmt: skip
    return "\n".join(lines)


def plan_text(plan) -> str:
    from llm_trainer.primitives import PrimitiveKind

    lines = []
    for i, p in enumerate(plan):
        if p.kind == PrimitiveKind.MOVE_GRIPPER:
            pos = ", ".join(f"{v:.3f}" for v in p.position)
            lines.append(f"{i:2d}. move_gripper([{pos}], yaw {np.degrees(p.yaw):.0f} deg)")
        elif p.kind == PrimitiveKind.CLOSE_GRIPPER:
            lines.append(f"{i:2d}. close_gripper({p.object_name})" if p.object_name else f"{i:2d}. close_gripper()")
        else:
            lines.append(f"{i:2d}. open_gripper()")
    return "\n".join(lines)


def waypoint_picture(view, plan) -> np.ndarray:
    """The plan's waypoints projected into a camera view: numbered dots joined in order (OpenCV)."""
    import cv2

    from llm_trainer.perception.debug import project
    from llm_trainer.primitives import PrimitiveKind

    image = np.ascontiguousarray(view.rgb.copy())
    pts, held = [], False
    for i, p in enumerate(plan):
        if p.kind == PrimitiveKind.CLOSE_GRIPPER:
            held = True
        elif p.kind == PrimitiveKind.OPEN_GRIPPER:
            held = False
        else:
            ((u, v),) = project(view, np.array([p.position]))
            pts.append((int(round(u)), int(round(v)), i, held))
    for (u0, v0, *_), (u1, v1, *_) in zip(pts, pts[1:]):
        cv2.line(image, (u0, v0), (u1, v1), (255, 255, 0), 1, cv2.LINE_AA)
    for u, v, i, held in pts:
        colour = (255, 80, 0) if held else (0, 200, 255)  # orange: carrying, cyan: hand open
        cv2.circle(image, (u, v), 4, colour, -1, cv2.LINE_AA)
        cv2.putText(image, str(i), (u + 5, v - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, colour, 1, cv2.LINE_AA)
    return image


def camera_view(client, camera: str, timeout: float):
    """One assembled RGB-D view of ``camera`` from its contract topics (None when it does not arrive)."""
    from geometry_msgs.msg import TransformStamped
    from sensor_msgs.msg import CameraInfo, CompressedImage

    from llm_trainer.perception.frames import FrameAssembler
    from llm_trainer.sensors.cameras import camera_topics

    topics = camera_topics(camera)
    assembler = FrameAssembler(only={camera})
    lock, event = threading.Lock(), threading.Event()

    def feed(topic):
        def on_msg(msg):
            with lock:
                assembler.add(topic, msg)
                if assembler.ready():
                    event.set()

        return on_msg

    from llm_trainer.ros.qos import EXTRINSICS_QOS as latched

    subs = [
        client.node.create_subscription(CameraInfo, topics.camera_info, feed(topics.camera_info), 10),
        client.node.create_subscription(TransformStamped, topics.extrinsics, feed(topics.extrinsics), latched),
        client.node.create_subscription(CompressedImage, topics.color_compressed, feed(topics.color_compressed), 10),
        client.node.create_subscription(CompressedImage, topics.depth_compressed, feed(topics.depth_compressed), 10),
    ]
    try:
        if not event.wait(timeout):
            return None
        with lock:
            views = assembler.frame_set()
        return views[0] if views else None
    finally:
        for sub in subs:
            client.node.destroy_subscription(sub)


def run_task(client, options: TaskOptions, *, ask=input, log=print) -> dict:
    """One task on the running graph; returns the summary (also for refusals, with ``refused``)."""
    from llm_trainer.ros.conversions import primitive_from_msg, scene_from_msg

    options.validate()
    missing = preflight(client, options)
    if missing:
        raise Refused("refused: missing " + "; ".join(missing))
    sentence, task_name, goal = options.sentence, "", {}
    if options.reset:
        name, seed = options.reset.rsplit(":", 1)
        reset = client.reset(name, int(seed))
        sentence = sentence or reset.instruction
        task_name, goal = name, json.loads(reset.goal_json or "{}")
        topic, scene_msg = f"the reset of {options.reset}", reset.scene
    else:
        topic, scene_msg = current_scene(client, options)
    scene = scene_from_msg(scene_msg)
    log(f"task: {sentence}\nscene from {topic} ({len(scene.objects)} objects):\n{scene_table(scene)}")
    t0 = time.perf_counter()
    planned = client.plan(sentence, scene_msg, task_name, goal, backend=options.backend)
    plan_s = time.perf_counter() - t0
    summary = {"sentence": sentence, "scene_topic": topic, "planned": bool(planned.success),
               "plan_s": round(plan_s, 2), "backend": planned.backend}  # fmt: skip
    if not planned.success:
        raise Refused(f"refused: the planner found no valid plan: {planned.message}")
    plan = [primitive_from_msg(m) for m in planned.plan]
    log(f"plan ({planned.backend}, {plan_s:.1f} s, {len(plan)} primitives):\n{plan_text(plan)}")
    if options.picture is not None and options.cameras:
        view = camera_view(client, options.cameras[0], options.timeout)
        if view is None:
            log(f"no picture: camera {options.cameras[0]} sent no complete frame")
        else:
            import cv2

            options.picture.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(options.picture), cv2.cvtColor(waypoint_picture(view, plan), cv2.COLOR_RGB2BGR))
            log(f"waypoints over the {view.name} view: {options.picture}")
            summary["picture"] = str(options.picture)
    if not options.dry_run and not options.yes:
        answer = ask("execute this plan? [y/N] ").strip().lower()
        if answer not in ("y", "yes"):
            summary.update(executed=False, refused="not confirmed")
            log("not executed (not confirmed)")
            return summary
    episode_id = f"task_{time.strftime('%Y%m%d_%H%M%S')}_{uuid.uuid4().hex[:6]}"
    recording = options.record and not options.dry_run and client._episode is not None
    if recording:
        if client._episode.wait_for_service(timeout_sec=2.0):
            client.start_episode(episode_id, {"instruction": sentence, "task_name": task_name, "source": "task"})
        else:
            log("no recorder running: the episode is not recorded")
            recording = False
    success = False
    try:
        result = client.execute(planned.plan, scene=scene_msg, dry_run=options.dry_run,
                                feedback=lambda fb: log(f"  primitive {fb.feedback.current.index + 1}/"
                                                        f"{fb.feedback.total}"))  # fmt: skip
        summary.update(executed=not options.dry_run, executor_ok=bool(result.success), message=result.message)
        log(f"executor: {'ok' if result.success else 'FAILED'} {result.message}".rstrip())
        if result.success and not options.dry_run:
            if client._check.wait_for_service(timeout_sec=1.0):
                check = client.check_success()
                success = bool(check.success)
                summary["task_success"] = success
                log(f"task {'succeeded' if success else 'failed'}: {check.details_json}")
            else:
                summary["task_success"] = None
                log("no success check on this graph (the robot): judge the outcome by eye")
    finally:
        if recording:
            client.stop_episode(episode_id, {"instruction": sentence}, success)
            summary["episode_id"] = episode_id
    return summary
