"""Recording throughput for three RGB-D cameras at 15 Hz, and export time per episode per format.

One run, one machine (named in the header): the simulator node renders its three cameras at
``--rate`` Hz (simulated time, which runs in real time while the arm is idle) and publishes the
compressed streams of the camera contract; the recorder node records them (and the state topics) for
``--seconds`` of wall time. Reported: camera frames per second recorded, MB/s written, and dropped
frames = frames the simulator stamped in the recorded span minus frames in the bag (target: zero).
Then the episode is exported to each format and timed.

    .venv/bin/python scripts/benchmark_recording.py [--seconds 20] [--rate 15]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from llm_trainer.machine import describe_machine

os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=15.0)
    parser.add_argument("--domain-id", type=int, default=77)
    args = parser.parse_args(argv)

    from llm_trainer.bringup.graph import load_graph
    from llm_trainer.bringup.local import LocalGraph
    from llm_trainer.datagen.graph_client import GraphClient
    from llm_trainer.datasets.export import ExportOptions, export_run
    from llm_trainer.recording import bag_summary, read_episode_bag
    from llm_trainer.sensors.cameras import camera_topics

    print(f"# {describe_machine()}")
    graph = load_graph("sim")
    graph.nodes = [n for n in graph.nodes if n.executable in ("sim_node", "recorder_node")]
    with tempfile.TemporaryDirectory(prefix="llmt-rec-") as tmp:
        out = Path(os.environ.get("BENCH_KEEP", tmp))
        arguments = {"output_dir": str(out), "record_dir": str(out), "camera_rate_hz": args.rate}
        with LocalGraph(graph, arguments, log_dir=out / "logs", domain_id=args.domain_id) as local:
            client = GraphClient(domain_id=args.domain_id, alive_check=local.check_alive)
            try:
                deadline = time.monotonic() + 60
                while not (client._episode.service_is_ready() and client._reset.service_is_ready()):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the graph did not come up")
                    time.sleep(0.1)
                time.sleep(1.0)
                reset = client.reset("stack_blocks", 0)
                client.start_episode("bench", {"task": "stack_blocks", "seed": 0})
                t0 = time.monotonic()
                time.sleep(args.seconds)
                # as generate does: record until the recorder has seen the state topics up to "now"
                check = client.check_success()
                until = check.scene.header.stamp.sec + check.scene.header.stamp.nanosec * 1e-9
                stopped = client.stop_episode("bench", {"record_until": until}, True)
                wall = time.monotonic() - t0
                del reset
            finally:
                client.close()
        bag = Path(stopped.bag_path)
        counts = bag_summary(bag)
        size = sum(p.stat().st_size for p in bag.glob("*.mcap"))
        cams = ("front", "left", "right")
        frames, dropped = 0, 0
        per_topic = {}
        for cam in cams:
            t = camera_topics(cam)
            stamps = sorted(
                m.header.stamp.sec + m.header.stamp.nanosec * 1e-9
                for _, m in read_episode_bag(bag, [t.camera_info])[t.camera_info]
            )
            expected = int(round((stamps[-1] - stamps[0]) * args.rate)) + 1
            for topic in (t.color_compressed, t.depth_compressed):
                frames += counts.get(topic, 0)
                dropped += max(0, expected - counts.get(topic, 0))
                per_topic[topic] = {"recorded": counts.get(topic, 0), "published": expected}
        row = {
            "cameras": len(cams),
            "rate_hz": args.rate,
            "wall_s": round(wall, 2),
            "rgbd_framesets_per_s": round(frames / 2 / len(cams) / wall, 2),
            "camera_messages_per_s": round(frames / wall, 1),
            "MB_per_s": round(size / 1e6 / wall, 3),
            "MB_per_min": round(size / 1e6 / wall * 60, 1),
            "dropped_frames": dropped,
            "sim_s": round(stamps[-1] - stamps[0], 2),
            "per_topic": per_topic,
        }
        print("| cameras | target Hz | RGB-D frame sets/s recorded (per camera) | MB/s | dropped frames |")
        print("|---|---|---|---|---|")
        print(f"| 3 | {args.rate:g} | {row['rgbd_framesets_per_s']} | {row['MB_per_s']} | {dropped} |")
        # the bag as one episode: export each format and time it
        from llm_trainer.recording import update_metadata_json

        update_metadata_json(bag, {"success": True})
        timings = {}
        for fmt, kwargs in (
            ("robomimic", {"images": True, "depth": True}),
            ("lerobot", {"images": True}),
            ("sft-jsonl", {}),
        ):
            t1 = time.perf_counter()
            dest = out / f"export.{fmt}"
            try:
                export_run(ExportOptions(out, fmt, dest, include_failures=True, **kwargs))
                timings[fmt] = round(time.perf_counter() - t1, 2)
            except Exception as exc:  # noqa: BLE001 - report, go on
                timings[fmt] = f"failed: {exc}"
        row["export_s_per_episode"] = timings
        row["episode_sim_s"] = round(wall, 1)
        print("| format | export s for this episode |")
        print("|---|---|")
        for fmt, s in timings.items():
            print(f"| {fmt} | {s} |")
        print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
