"""Planners: scene state + task sentence -> validated waypoint primitives."""
