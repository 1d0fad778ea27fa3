"""Gazebo-side and bridge-side names: the world, the robot model, and every topic the bridge carries.

The bridge keeps the same name on both sides (``ros_topic_name == gz_topic_name``), all under ``/gz`` or
Gazebo's own ``/world/<world>/...``, so nothing it publishes collides with what the simulator node
publishes itself (the camera contract's ``/cameras/...``, ``/joint_states``, ``/clock``, ...): the node
reads these through ``GazeboSimulation`` and publishes the contract from it, as it does for MuJoCo.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm_trainer.sim import panda_description as panda

GZ_ROOT = "/gz"


@dataclass(frozen=True)
class GazeboNames:
    world: str = "lab"
    model: str = "panda"

    # ---- cameras: an rgbd_camera sensor with <topic>T publishes T/image, T/depth_image, T/camera_info
    def camera_topic(self, camera: str) -> str:
        return f"{GZ_ROOT}/cameras/{camera}"

    def camera_image(self, camera: str) -> str:
        return f"{self.camera_topic(camera)}/image"

    def camera_depth(self, camera: str) -> str:
        return f"{self.camera_topic(camera)}/depth_image"

    def camera_info(self, camera: str) -> str:
        return f"{self.camera_topic(camera)}/camera_info"

    # ---- the robot: JointStatePublisher's fixed topic, one JointPositionController topic per joint
    @property
    def joint_state(self) -> str:
        return f"/world/{self.world}/model/{self.model}/joint_state"

    def joint_command(self, joint: str) -> str:
        return f"{GZ_ROOT}/{self.model}/{joint}/cmd_pos"

    @property
    def joints(self) -> tuple[str, ...]:
        return panda.JOINT_NAMES + panda.FINGER_JOINT_NAMES

    # ---- the world: SceneBroadcaster's clock and dynamic poses, UserCommands' control service
    @property
    def clock(self) -> str:
        return f"/world/{self.world}/clock"

    @property
    def dynamic_poses(self) -> str:
        return f"/world/{self.world}/dynamic_pose/info"

    @property
    def control_service(self) -> str:
        return f"/world/{self.world}/control"
