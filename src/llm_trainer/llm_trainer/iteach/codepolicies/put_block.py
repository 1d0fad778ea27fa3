"""Hand-written CodePolicy for put_block: the named block into the target area.

Runs in the CodePolicy sandbox (scene API: llm_trainer/iteach/scene_api.py); only math is importable.
"""

import math

STEPS = ["above_block", "down_to_block", "grasp", "lift", "above_area", "down_to_area", "release", "retreat"]

HOVER = 0.12  # [m] carrying height of the hand
REACHED = 0.006  # [m]


def toward(scene, target):
    hand = scene["hand"]["position"]
    d = [t - h for t, h in zip(target, hand)]
    n = math.sqrt(sum(v * v for v in d))
    step = scene["limits"]["max_move"]
    if n > step:
        d = [v * step / n for v in d]
    return d


def square_turn(scene, yaw):
    # A block looks the same every 90 degrees: turn the shorter way to the nearest face.
    q = math.pi / 2
    d = (yaw - scene["hand"]["yaw"]) % q
    if d > q / 2:
        d -= q
    return max(-scene["limits"]["max_turn"], min(scene["limits"]["max_turn"], d))


def near(scene, target, tol=REACHED):
    return math.dist(scene["hand"]["position"], target) < tol


def block(scene):
    return scene["objects"][scene["goal"]["block"]]


def area(scene):
    return scene["objects"][scene["goal"]["area"]]


def above_block_target(scene):
    p = block(scene)["position"]
    return [p[0], p[1], HOVER]


def above_block_action(scene):
    return {
        "move": toward(scene, above_block_target(scene)),
        "turn": square_turn(scene, block(scene)["yaw"]),
        "gripper": "open",
    }


def above_block_done(scene):
    return near(scene, above_block_target(scene), 0.01) and abs(square_turn(scene, block(scene)["yaw"])) < 0.05


def down_to_block_action(scene):
    return {
        "move": toward(scene, block(scene)["position"]),
        "turn": square_turn(scene, block(scene)["yaw"]),
        "gripper": "open",
    }


def down_to_block_done(scene):
    return near(scene, block(scene)["position"])


def grasp_action(scene):
    return {"move": [0.0, 0.0, 0.0], "gripper": "close"}


def grasp_done(scene):
    return (
        scene["goal"]["block"] in scene["hand"]["holding"]
        and scene["hand"]["gripper_width"] < block(scene)["size"][1] + 0.004
    )


def lift_target(scene):
    p = scene["hand"]["position"]
    return [p[0], p[1], HOVER]


def lift_action(scene):
    return {"move": toward(scene, lift_target(scene)), "gripper": "close"}


def lift_done(scene):
    return scene["hand"]["position"][2] > HOVER - 0.01


def above_area_target(scene):
    p = area(scene)["position"]
    return [p[0], p[1], HOVER]


def above_area_action(scene):
    return {"move": toward(scene, above_area_target(scene)), "gripper": "close"}


def above_area_done(scene):
    return near(scene, above_area_target(scene), 0.01)


def place_target(scene):
    a = area(scene)
    top = a["position"][2] + a["size"][2] / 2
    return [a["position"][0], a["position"][1], top + block(scene)["size"][2] / 2 + 0.004]


def down_to_area_action(scene):
    return {"move": toward(scene, place_target(scene)), "gripper": "close"}


def down_to_area_done(scene):
    return near(scene, place_target(scene))


def release_action(scene):
    return {"move": [0.0, 0.0, 0.0], "gripper": "open"}


def release_done(scene):
    return scene["hand"]["gripper_width"] > block(scene)["size"][1] + 0.015


def retreat_action(scene):
    return {"move": toward(scene, lift_target(scene)), "gripper": "open"}


def retreat_done(scene):
    return scene["hand"]["position"][2] > HOVER - 0.01
