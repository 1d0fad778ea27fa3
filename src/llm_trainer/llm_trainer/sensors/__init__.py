"""Sensors: the camera contract (names, topics, frames, intrinsics, extrinsics) and image codecs."""
