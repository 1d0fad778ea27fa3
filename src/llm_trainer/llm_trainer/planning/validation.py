"""Validation of a proposed plan before any motion: ``validate_plan`` plus the executor's IK.

``check_plan`` is what every planner runs on every proposal (``Planner.plan``): finite numbers,
workspace and table, known names, the gripper sequence (no closing on nothing, no release mid-air
unless allowed), then reachability along every straight move with the executor's kinematics.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_trainer.primitives import GRASP_TOLERANCE, MAX_RELEASE_HEIGHT, Primitive, validate_plan
from llm_trainer.scene import SceneState


@dataclass
class ValidationConfig:
    table_clearance: float = 0.005  # [m] lowest TCP height above the table
    grasp_tolerance: float = GRASP_TOLERANCE  # [m] TCP distance from the object's box when closing on it
    max_release_height: float = MAX_RELEASE_HEIGHT  # [m] highest drop when releasing a held object
    allow_release_in_air: bool = False  # true: tasks that mean to drop things (skips the check above)
    reachability: bool = True  # IK along every move, as the executor will do it

    def validate(self) -> None:
        if not 0.0 <= self.table_clearance <= 0.1:
            raise ValueError("validation.table_clearance must be within [0, 0.1] m")
        if not 0.0 <= self.grasp_tolerance <= 0.1:
            raise ValueError("validation.grasp_tolerance must be within [0, 0.1] m")
        if not 0.0 <= self.max_release_height <= 0.5:
            raise ValueError("validation.max_release_height must be within [0, 0.5] m")


def check_plan(
    plan: list[Primitive],
    scene: SceneState,
    config: ValidationConfig | None = None,
    *,
    dynamic: bool = False,
    holding: str = "",
) -> list[Primitive]:
    """The plan with yaws normalised, or ``PlanRejected``. ``dynamic`` (replanning one step at a time
    from the current scene): the step may leave the gripper closed, and ``holding`` names the
    object already in the hand."""
    cfg = config or ValidationConfig()
    checked = validate_plan(
        plan,
        scene,
        table_clearance=cfg.table_clearance,
        grasp_tolerance=cfg.grasp_tolerance,
        max_release_height=None if cfg.allow_release_in_air else cfg.max_release_height,
        start_holding=holding,
        allow_ending_closed=dynamic,
    )
    if cfg.reachability:
        from llm_trainer.planning.reachability import check_reachability

        check_reachability(checked, scene)
    return checked
