"""Multi-view RGB-D perception (BLAZER Sec. III-C): per view, point at each named object, segment it
from the point, lift mask + depth to a world-frame box; then fuse the views by medians.

ROS-free: ``views`` are frames from the camera contract (``sensors.cameras``), whatever produced
them (the simulator, RealSense, a bag). The perception node only adapts this to topics."""
