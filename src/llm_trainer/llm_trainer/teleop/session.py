"""``llm-trainer teleop``: record a source demonstration by teleoperating the simulated Panda.

The device's velocity commands go through the executor's servo interface (``execution.servo``: steps
clamped per step, the safety workspace and table clearance held, IK refusals reported), at
``rate_hz``; the episode is recorded into the same bag layout as generated episodes (joint states,
commanded joints, hand pose, scene, the gripper commands as primitive events), so ``annotate`` and
``augment --demo`` take it like any other episode. Gripper events name the object the one hand model
(``llm_trainer.grasp``) puts between the fingers. The demo ends when the person finishes (kept, with
the task's success check in its record), discards it (nothing is written), or after ``max_steps``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llm_trainer.teleop.devices import TeleopDevice

MAX_LEAD = 0.03  # [m] how far the commanded pose may run ahead of the hand


@dataclass
class TeleopOptions:
    task: str
    seed: int = 0
    out: Path = Path("runs/teleop")
    rate_hz: float = 10.0
    max_steps: int = 3000
    stop_on_success: bool = True
    episode_id: str = ""

    def validate(self) -> None:
        if not 1.0 <= self.rate_hz <= 50.0:
            raise ValueError("--rate must be within [1, 50] Hz")
        if self.max_steps < 1:
            raise ValueError("--max-steps must be >= 1")


def record_teleop(options: TeleopOptions, device: TeleopDevice, log=print) -> dict:
    from llm_trainer import grasp
    from llm_trainer.datagen.inprocess import InProcessRecorder
    from llm_trainer.episodes import EpisodeRecord, ExecutionRecord, Outcome, OutcomeKind, PlanningRecord, provenance
    from llm_trainer.execution.errors import Status
    from llm_trainer.execution.executor import PrimitiveStatus
    from llm_trainer.execution.servo import ServoController
    from llm_trainer.primitives import Primitive
    from llm_trainer.sim.mujoco_sim import MujocoSimulation
    from llm_trainer.sim.sim_config import SimConfig
    from llm_trainer.tasks.registry import get_task

    options.validate()
    task = get_task(options.task)
    episode_id = options.episode_id or f"teleop_{options.task}_{options.seed:06d}_{time.strftime('%H%M%S')}"
    bags = Path(options.out) / "bags"
    if (bags / episode_id).exists():
        raise FileExistsError(f"{bags / episode_id} exists: give another --episode-id")
    sim = MujocoSimulation(SimConfig(render_cameras=False))
    recorder = InProcessRecorder(sim, bags)
    dt = 1.0 / options.rate_hz
    try:
        instance = sim.reset(task, options.seed)
        scene = sim.scene_state()
        recorder.start(episode_id, {"record": {"episode_id": episode_id, "task": options.task, "seed": options.seed}})
        servo = ServoController(sim, dt=dt, on_step=recorder.on_step)
        closed, plan, refusals, steps, ended = False, [], 0, 0, "max_steps"
        target, target_yaw = None, 0.0
        t0 = time.perf_counter()

        def event(prim: Primitive) -> None:
            plan.append(prim)
            index = len(plan) - 1
            for status in (Status.RUNNING, Status.DONE):
                recorder.primitive_event(plan, PrimitiveStatus(index, prim.kind, status), 0)

        for steps in range(1, options.max_steps + 1):
            cmd = device.read()
            if cmd.discard:
                ended = "discarded"
                break
            if cmd.finish:
                ended = "finished"
                break
            pos, yaw = servo.hand()
            if target is None:
                target, target_yaw = pos.copy(), yaw
            if cmd.gripper is not None and (cmd.gripper == "close") != closed:
                closed = cmd.gripper == "close"
                event(Primitive.move(tuple(pos), yaw))
                if closed:
                    held = grasp.object_at_tcp(pos, grasp.scene_boxes(sim.scene_state())) or ""
                    event(Primitive.close(held))
                else:
                    event(Primitive.open())
            # Velocity commands integrate into a commanded pose (as MoveIt Servo does), not onto the measured
            # hand, which lags the command: the hand then moves at the commanded speed. The command stays
            # within MAX_LEAD of the hand, so a blocked arm does not wind it up.
            target = target + np.asarray(cmd.velocity) * dt
            lead = target - pos
            if np.linalg.norm(lead) > MAX_LEAD:
                target = pos + lead * (MAX_LEAD / np.linalg.norm(lead))
            target_yaw += cmd.yaw_rate * dt
            status = servo.step(target, target_yaw, closed)
            if not status.ok:
                refusals += 1
                target, target_yaw = np.asarray(status.position, float), status.yaw
            if options.stop_on_success and steps % 5 == 0 and not closed and sim.check_success().success:
                ended = "succeeded"
                break
        if ended == "discarded":
            recorder.bag.close({"record": {"episode_id": episode_id}}, success=False, status="discarded")
            recorder.bag = None
            import shutil

            shutil.rmtree(bags / episode_id, ignore_errors=True)
            log("discarded: nothing written")
            return {"episode_id": episode_id, "kept": False, "steps": steps}
        sim.step_for(0.5, recorder.on_step)
        report = sim.check_success()
        plan_dicts = [p.to_dict() for p in plan]
        planning = PlanningRecord(backend="teleop", success=True, message=f"teleoperated with {device.name}",
                                  plan=plan_dicts, parsed_plan=plan_dicts, mode="teleop")  # fmt: skip
        execution = ExecutionRecord(success=True, message=f"{steps} servo steps, {refusals} refused")
        outcome = Outcome(OutcomeKind.SUCCESS) if report.success else Outcome(
            OutcomeKind.TASK_NOT_ACHIEVED, "the task's success check failed")  # fmt: skip
        record = EpisodeRecord(
            episode_id=episode_id, task=options.task, seed=options.seed, instruction=instance.instruction,
            goal=instance.goal, scene=scene.to_dict(), final_scene=sim.scene_state().to_dict(), planning=planning,
            execution=execution, success=report.success, success_report=report.to_dict(), outcome=outcome,
            timing={"wall": time.perf_counter() - t0, "sim_time": sim.time},
            provenance=provenance("teleop", device=device.name, rate_hz=options.rate_hz),
        )  # fmt: skip
        record.bag = recorder.stop(record)
    finally:
        if recorder.bag is not None:  # an error mid-demo: the bag is closed as incomplete, never half-written
            recorder.bag.close({"record": {"episode_id": episode_id}}, success=False, status="aborted")
        sim.close()
    summary = {"episode_id": episode_id, "kept": True, "bag": record.bag, "success": report.success,
               "steps": steps, "ended": ended, "refused_steps": refusals, "gripper_events": len(plan) // 2}  # fmt: skip
    log(
        f"{'success' if report.success else 'not solved'}: {episode_id} ({steps} steps, ended: {ended}) -> {record.bag}"
    )
    return summary
