"""Thin rclpy nodes: each adapts one core module to topics, services, actions and parameters."""
