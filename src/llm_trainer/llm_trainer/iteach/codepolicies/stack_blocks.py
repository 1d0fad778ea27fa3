"""Hand-written CodePolicy for stack_blocks: the blocks of goal["order"] one by one on goal["base"].

Runs in the CodePolicy sandbox (scene API: llm_trainer/iteach/scene_api.py); only math is importable.
The steps are written for the task's two blocks; each helper takes the block's place in the order.
"""

import math

STEPS = [
    "above_first", "down_to_first", "grasp_first", "lift_first", "above_base", "down_to_base", "release_first",
    "retreat_first",
    "above_second", "down_to_second", "grasp_second", "lift_second", "above_first_placed", "down_to_first_placed",
    "release_second", "retreat_second",
]  # fmt: skip

HOVER = 0.15  # [m] carrying height of the hand
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


def mover(scene, k):
    return scene["objects"][scene["goal"]["order"][k]]


def below(scene, k):
    name = scene["goal"]["base"] if k == 0 else scene["goal"]["order"][k - 1]
    return scene["objects"][name]


def hover_over(obj):
    return [obj["position"][0], obj["position"][1], HOVER]


def above(scene, k):
    return {
        "move": toward(scene, hover_over(mover(scene, k))),
        "turn": square_turn(scene, mover(scene, k)["yaw"]),
        "gripper": "open",
    }


def above_done(scene, k):
    return near(scene, hover_over(mover(scene, k)), 0.01) and abs(square_turn(scene, mover(scene, k)["yaw"])) < 0.05


def down(scene, k):
    return {
        "move": toward(scene, mover(scene, k)["position"]),
        "turn": square_turn(scene, mover(scene, k)["yaw"]),
        "gripper": "open",
    }


def down_done(scene, k):
    return near(scene, mover(scene, k)["position"])


def grasp(scene, k):
    return {"move": [0.0, 0.0, 0.0], "gripper": "close"}


def grasp_done(scene, k):
    held = scene["goal"]["order"][k] in scene["hand"]["holding"]
    return held and scene["hand"]["gripper_width"] < mover(scene, k)["size"][1] + 0.004


def straight_up(scene):
    p = scene["hand"]["position"]
    return [p[0], p[1], HOVER]


def lift(scene, k):
    return {"move": toward(scene, straight_up(scene)), "gripper": "close"}


def high(scene):
    return scene["hand"]["position"][2] > HOVER - 0.01


def carry(scene, k):
    return {
        "move": toward(scene, hover_over(below(scene, k))),
        "turn": square_turn(scene, below(scene, k)["yaw"]),
        "gripper": "close",
    }


def carry_done(scene, k):
    return near(scene, hover_over(below(scene, k)), 0.01)


def place_target(scene, k):
    b = below(scene, k)
    top = b["position"][2] + b["size"][2] / 2
    return [b["position"][0], b["position"][1], top + mover(scene, k)["size"][2] / 2 + 0.004]


def lower(scene, k):
    return {"move": toward(scene, place_target(scene, k)), "gripper": "close"}


def lower_done(scene, k):
    return near(scene, place_target(scene, k))


def release(scene, k):
    return {"move": [0.0, 0.0, 0.0], "gripper": "open"}


def release_done(scene, k):
    return scene["hand"]["gripper_width"] > mover(scene, k)["size"][1] + 0.015


def retreat(scene, k):
    return {"move": toward(scene, straight_up(scene)), "gripper": "open"}


def above_first_action(scene):
    return above(scene, 0)


def above_first_done(scene):
    return above_done(scene, 0)


def down_to_first_action(scene):
    return down(scene, 0)


def down_to_first_done(scene):
    return down_done(scene, 0)


def grasp_first_action(scene):
    return grasp(scene, 0)


def grasp_first_done(scene):
    return grasp_done(scene, 0)


def lift_first_action(scene):
    return lift(scene, 0)


def lift_first_done(scene):
    return high(scene)


def above_base_action(scene):
    return carry(scene, 0)


def above_base_done(scene):
    return carry_done(scene, 0)


def down_to_base_action(scene):
    return lower(scene, 0)


def down_to_base_done(scene):
    return lower_done(scene, 0)


def release_first_action(scene):
    return release(scene, 0)


def release_first_done(scene):
    return release_done(scene, 0)


def retreat_first_action(scene):
    return retreat(scene, 0)


def retreat_first_done(scene):
    return high(scene)


def above_second_action(scene):
    return above(scene, 1)


def above_second_done(scene):
    return above_done(scene, 1)


def down_to_second_action(scene):
    return down(scene, 1)


def down_to_second_done(scene):
    return down_done(scene, 1)


def grasp_second_action(scene):
    return grasp(scene, 1)


def grasp_second_done(scene):
    return grasp_done(scene, 1)


def lift_second_action(scene):
    return lift(scene, 1)


def lift_second_done(scene):
    return high(scene)


def above_first_placed_action(scene):
    return carry(scene, 1)


def above_first_placed_done(scene):
    return carry_done(scene, 1)


def down_to_first_placed_action(scene):
    return lower(scene, 1)


def down_to_first_placed_done(scene):
    return lower_done(scene, 1)


def release_second_action(scene):
    return release(scene, 1)


def release_second_done(scene):
    return release_done(scene, 1)


def retreat_second_action(scene):
    return retreat(scene, 1)


def retreat_second_done(scene):
    return high(scene)
