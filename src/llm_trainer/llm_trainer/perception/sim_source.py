"""Frames and object queries from the embedded simulator (the same contract the nodes publish)."""

from __future__ import annotations

import numpy as np

from llm_trainer.perception.views import CameraView, ObjectQuery
from llm_trainer.sensors.cameras import CameraModel


def sim_camera_model(sim, name: str) -> CameraModel:
    cam = sim.camera(name)
    position, rotation = sim.camera_pose_optical(name)
    return CameraModel(name, cam.width, cam.height, sim.camera_intrinsics(name), position, rotation)


def sim_views(sim, cameras: list[str] | None = None) -> list[CameraView]:
    views = []
    for cam in sim.config.cameras:
        if cameras is not None and cam.name not in cameras:
            continue
        rgb, depth = sim.render(cam.name)
        views.append(CameraView(sim_camera_model(sim, cam.name), rgb, depth.astype(np.float32), sim.time))
    return views


def queries_for(instance) -> list[ObjectQuery]:
    """What to look for in a task instance: every object, with its colour for the classical backend."""
    return [
        ObjectQuery(o.name, o.category, o.name.replace("_", " "), tuple(int(round(255 * c)) for c in o.rgba[:3]))
        for o in instance.objects
    ]
