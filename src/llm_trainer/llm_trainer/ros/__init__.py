"""ROS 2 glue shared by the nodes: message conversions and small rclpy helpers (no algorithms)."""
