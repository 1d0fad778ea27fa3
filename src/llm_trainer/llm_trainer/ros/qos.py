"""QoS profiles of the camera contract (``llm_trainer.sensors.cameras``), in one place.

The contract itself is ROS-free; the profiles need rclpy, so they live here. Every publisher and
subscriber of a camera's extrinsics uses ``EXTRINSICS_QOS``: latched (transient local, depth 1),
as ``/tf_static`` is, so a node that starts late still gets each camera's pose. A publisher and a
subscriber that disagreed here would silently never match.
"""

from __future__ import annotations

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

#: A camera's optical-frame pose: sent once, kept for late joiners.
EXTRINSICS_QOS = QoSProfile(
    depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
)
