"""Node-graph descriptions shared by the ROS 2 launch files and the local bringup."""
