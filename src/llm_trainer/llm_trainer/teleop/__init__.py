"""Teleoperation: record source demonstrations through the servo interface (keyboard, SpaceMouse, script)."""
