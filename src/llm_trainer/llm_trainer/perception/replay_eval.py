"""``llm-trainer perception-eval``: replay a scene bag through the perception node over DDS and score it.

The perception node runs as its own process on a private ROS domain, as on the robot; this process
publishes the bag's camera-contract messages (the recorded CDR bytes, unchanged) one frame set at a
time and waits for the node's report on that set, so every set is processed and the latency per
set is the node's own. The last perceived scene is scored against the ground truth stored in the
bag (``perception.scene_bag``): a per-object table and one JSON line with the medians.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llm_trainer.perception.evaluation import score, summary
from llm_trainer.ros.domains import random_domain
from llm_trainer.sensors.cameras import camera_of_topic


@dataclass
class EvalOptions:
    bag: Path
    drop_camera: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)  # perception config overrides (pointing=..., ...)
    timeout: float = 60.0  # [s] for the node to start and to answer each frame set
    log_dir: Path | None = None


def _config_file(settings: dict[str, Any], work: Path) -> str:
    if not settings:
        return ""
    import yaml

    from llm_trainer.config import to_dict, with_overrides
    from llm_trainer.perception.pipeline import load_perception_config

    config = with_overrides(load_perception_config(), settings, "perception")
    path = work / "perception.yaml"
    path.write_text(yaml.safe_dump({"perception": to_dict(config)}), encoding="utf-8")
    return str(path)


def perception_eval(options: EvalOptions, log=print) -> dict[str, Any]:
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    from llm_trainer.bringup.local import follow_parent
    from llm_trainer.recording.bag_reader import read_episode_metadata, read_raw_messages
    from llm_trainer.scene import SceneState

    bag = Path(options.bag)
    meta = read_episode_metadata(bag).get("perception")
    if not meta:
        raise ValueError(f"{bag} is not a perception scene bag (no 'perception' in metadata.json; use record-bag)")
    cameras = list(meta["cameras"])
    unknown = [c for c in options.drop_camera if c not in cameras]
    if unknown:
        raise ValueError(f"--drop-camera {', '.join(unknown)}: the bag has cameras {', '.join(cameras)}")
    messages = [m for m in read_raw_messages(bag) if camera_of_topic(m[1])]
    replayed = [m for m in messages if camera_of_topic(m[1])[0] not in options.drop_camera]
    stamps = sorted({t for t, *_ in replayed})
    work = Path(tempfile.mkdtemp(prefix="llm_trainer_perception_eval_"))
    objects_file = work / "objects.json"
    objects_file.write_text(json.dumps(meta["queries"]), encoding="utf-8")
    domain = random_domain()
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    log_dir = Path(options.log_dir or work)
    log_dir.mkdir(parents=True, exist_ok=True)
    node_log = open(log_dir / "perception_node.log", "wb")
    argv = [sys.executable, "-m", "llm_trainer.nodes.perception_node", "--ros-args",
            "-p", f"objects_file:={objects_file}", "-p", f"cameras:={','.join(cameras)}",
            "-p", "partial_after:=0.3"]  # fmt: skip
    config_file = _config_file(options.settings, work)
    if config_file:
        argv += ["-p", f"config_file:={config_file}"]
    process = subprocess.Popen(argv, stdout=node_log, stderr=subprocess.STDOUT, env=env, preexec_fn=follow_parent)
    os.environ["ROS_DOMAIN_ID"] = str(domain)
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    node = rclpy.create_node("perception_replay", context=context)
    reports: dict[float, dict] = {}
    got = threading.Condition()

    def on_report(msg: String) -> None:
        data = json.loads(msg.data)
        with got:
            reports[round(data["stamp"], 6)] = data
            got.notify_all()

    node.create_subscription(String, "/perception/report", on_report, 10)
    from llm_trainer.ros.qos import EXTRINSICS_QOS as latched

    reliable = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    pubs = {}
    from llm_trainer.ros.conversions import message_class

    for _, topic, msgtype, _ in replayed:
        if topic not in pubs:
            kind = message_class(msgtype)
            pubs[topic] = node.create_publisher(kind, topic, latched if topic.endswith("/extrinsics") else reliable)
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    spinner = threading.Thread(target=executor.spin, daemon=True)
    spinner.start()
    latencies: list[float] = []
    node_seconds: list[dict] = []
    try:
        deadline = time.monotonic() + options.timeout
        while any(p.get_subscription_count() == 0 for p in pubs.values()):
            if process.poll() is not None:
                node_log.flush()
                tail = (log_dir / "perception_node.log").read_text(errors="replace")[-1500:]
                raise RuntimeError(f"the perception node exited ({process.returncode}): {tail}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the perception node did not subscribe within {options.timeout:.0f} s")
            time.sleep(0.1)
        for stamp_ns in stamps:
            t0 = time.perf_counter()
            for t, topic, _, raw in replayed:
                if t == stamp_ns:
                    pubs[topic].publish(raw)
            key = round(stamp_ns * 1e-9, 6)
            with got:
                if not got.wait_for(lambda key=key: key in reports, timeout=options.timeout):
                    raise RuntimeError(f"no perception report for the frame set at {key:.3f} s")
            latencies.append(time.perf_counter() - t0)
            node_seconds.append(reports[key])
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        node_log.close()
    last = node_seconds[-1]
    from llm_trainer.scene import ObjectState

    perceived = [ObjectState.from_dict(o) for o in last["objects"]]
    truth = SceneState.from_dict(meta["ground_truth"]).objects
    errors = score(perceived, truth, yaw_defined=set(meta["yaw_defined"]), alike=meta.get("alike"))
    used = sorted({c for r in node_seconds for c in r["cameras"]})
    result = {
        "bag": str(bag),
        "task": meta["task"],
        "seed": meta["seed"],
        **summary(errors),
        "cameras": cameras,
        "cameras_used": used,
        "dropped": list(options.drop_camera),
        "frame_sets": len(node_seconds),
        "latency_ms_median": round(1000 * float(np.median([r["total_s"] for r in node_seconds])), 1),
        "stage_ms_median": {
            stage: round(1000 * float(np.median([r["seconds"][stage] for r in node_seconds])), 1)
            for stage in node_seconds[0]["seconds"]
        },
        "round_trip_ms_median": round(1000 * float(np.median(latencies)), 1),
        "backends": last["backends"],
        "objects": [e.to_dict() for e in errors],
    }
    return result


def table(result: dict[str, Any]) -> str:
    fmt = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    lines = ["| object | detected | centre error [mm] | size error [mm] | yaw error [deg] | views |",
             "|---|---|---:|---:|---:|---:|"]  # fmt: skip
    for o in result["objects"]:
        lines.append(f"| {o['name']} | {'yes' if o['detected'] else 'NO'} | {fmt(o['center_error_mm'])} | "
                     f"{fmt(o['size_error_mm'])} | {fmt(o['yaw_error_deg'])} | {o['views']} |")  # fmt: skip
    return "\n".join(lines)
