"""Gazebo (gz-sim, Harmonic with ROS 2 Jazzy) behind the simulator interface, over ``ros_gz_bridge`` topics.

``names``: every Gazebo and bridge-side ROS topic, in one place; ``world``: the SDF world of an episode
(table, the task's objects, the Panda from ``urdf/panda.urdf``, the contract's cameras); ``bridge``: the
``ros_gz_bridge`` YAML generated from the same names; ``adaptor``: ``GazeboSimulation``, the
``llm_trainer.sim.base.Simulator`` that reads and commands the world through those topics (it needs
rclpy and the message packages of a full ROS 2 install, and a running Gazebo).
"""
