"""QoS profiles of the topics whose publishers and subscribers must agree, in one place.

The camera contract itself is ROS-free; the profiles need rclpy, so they live here. Every publisher and
subscriber of a camera's extrinsics uses ``EXTRINSICS_QOS``: latched (transient local, depth 1),
as ``/tf_static`` is, so a node that starts late still gets each camera's pose. The scene topics
(perception's ``/scene/objects``, the simulator's ``/scene/ground_truth``) use ``SCENE_QOS``: latched
too, because perception publishes a scene once per new frame set (seconds apart with real models, and
never again while a replayed bag loops over the same stamps), so a planner, a ``llm-trainer task`` or a
test that joins after it would otherwise wait for a scene that never comes. A transient-local
subscriber never matches a volatile publisher: a publisher and a subscriber that disagreed here would
silently never match.
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

#: A camera's optical-frame pose: sent once, kept for late joiners.
EXTRINSICS_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)

#: A scene (``SceneState``): every one delivered in order to a reader that keeps up (a recording's depth),
#: and the latest few kept for a reader that joins late (it takes the last as the current scene).
SCENE_QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
