"""Perception regression: a recorded bag's camera streams played into the perception node.

    ros2 launch llm_trainer replay.launch.py bag:=runs/scenes/put_block_3 rate:=1.0
    ros2 launch llm_trainer replay.launch.py bag:=BAG cameras:=front,left     # one camera missing

The same description (config/graphs/replay.yaml) starts with `llm-trainer bringup replay --arg bag=BAG`;
`llm-trainer perception-eval --bag BAG` scores such a replay against the bag's ground truth.
"""

from llm_trainer.bringup.graph import argument_docs
from llm_trainer.bringup.launch_support import graph_launch_description


def generate_launch_description():
    return graph_launch_description("replay", argument_docs("replay"))
