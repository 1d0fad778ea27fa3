"""The scene a planner sees when it runs on perception instead of the simulator's ground truth
(``--state perception``; BLAZER Fig. 4 in simulation): the cameras rendered at the episode's start,
through the perception pipeline, with the robot's own state (end-effector, gripper) as it is."""

from __future__ import annotations

from dataclasses import replace

from llm_trainer.perception.pipeline import Perception, PerceptionConfig, load_perception_config
from llm_trainer.perception.sim_source import queries_for, sim_views
from llm_trainer.scene import SceneState


class PerceivedScene:
    def __init__(self, config: PerceptionConfig | None = None):
        self.perception = Perception(config or load_perception_config())
        self.last_missing: list[str] = []

    def __call__(self, sim, instance, scene: SceneState) -> SceneState:
        result = self.perception.perceive(sim_views(sim), queries_for(instance))
        self.last_missing = result.missing
        # An object no camera saw is absent from the planner's scene: never invented.
        return replace(scene, objects=result.objects, source="perception")
